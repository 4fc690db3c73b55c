"""The unix account a job, a prologue or a notification script runs as.

The node runs jobs as their users and the head runs ``exec:`` notification
scripts as them; both look the user up here, neither imports the other.
"""

from __future__ import annotations

import os
import pwd
import threading
import time
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


#: Seconds a looked-up account is trusted while the account files keep their ``stat``: beyond the files
#: (LDAP, sssd), a changed account is seen within this time.
ACCOUNT_TTL = 5.0
#: The files whose change (an edit, a replacement) makes every account be looked up again at once.
ACCOUNT_FILES = ("/etc/passwd", "/etc/group")

_accounts: dict[str, tuple[float, tuple[tuple[int, int, int, int], ...], Account]] = {}
_accounts_lock = threading.Lock()


def _files_stamp() -> tuple[tuple[int, int, int, int], ...]:
    stamps = []
    for path in ACCOUNT_FILES:
        try:
            found = os.stat(path)
        except OSError:
            stamps.append((0, 0, 0, 0))
            continue
        stamps.append((found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns))
    return tuple(stamps)


def cached_account(user: str) -> Account | None:
    """:func:`lookup_account`, kept :data:`ACCOUNT_TTL` seconds while the account files are unchanged.

    A node launching many short jobs of a few users looked each up per job
    (``getpwnam`` and ``getgrouplist``: every line of the passwd and group
    files, or a directory server); two ``stat`` calls now say whether the
    files changed. An unknown user is never kept: one just created is seen
    at its first job.
    """
    now, stamp = time.monotonic(), _files_stamp()
    with _accounts_lock:
        kept = _accounts.get(user)
    if kept is not None and now - kept[0] < ACCOUNT_TTL and kept[1] == stamp:
        return kept[2]
    account = lookup_account(user)
    with _accounts_lock:
        if account is None:
            _accounts.pop(user, None)
        else:
            _accounts[user] = (now, stamp, account)
    return account
