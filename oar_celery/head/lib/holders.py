"""Who holds a lock: ``host:pid:random`` tokens, so that a holder that died can be recognized.

A lock in Redis expires by itself, but waiting out its whole TTL after its
holder was killed stalls whoever needs it. When the holder ran on this
machine, its process id tells at once whether it is still there.
"""

from __future__ import annotations

import os
import socket
import uuid


def holder_token() -> str:
    """A token naming this process as a lock's holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def holder_is_dead(token: str) -> bool:
    """True only if the token names a process of this machine (not this one) that no longer exists."""
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
