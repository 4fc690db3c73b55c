"""The unix account a job, a prologue or a notification script runs as.

The node runs jobs as their users and the head runs ``exec:`` notification
scripts as them; both look the user up here, neither imports the other.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

#: Shells that refuse to run commands; an emulated node falls back to /bin/sh.
_NO_LOGIN = ("nologin", "false")
@dataclass(frozen=True)
class Account:
    """The identity a job runs under."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str

    def popen_identity(self) -> dict[str, object]:
        """``subprocess.Popen`` arguments that run as this account (only a root process switches)."""
        if os.geteuid() == 0 and self.uid != 0:
            return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}
        return {}


def lookup_account(user: str) -> Account | None:
    """The passwd entry of ``user`` on this node, or None if the node does not know it."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    shell = entry.pw_shell
    if not shell or Path(shell).name in _NO_LOGIN or not os.access(shell, os.X_OK):
        shell = "/bin/sh"
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir or "/", shell)
