"""The job's process group: starting it as its user, signalling it, seeing it end.

The job runs in a session of its own, so its pid is also its process group id
and one ``killpg`` reaches every process it started (short of those that start
a session of their own). The redirections and the ``cd`` are done by a small
``sh`` wrapper that already runs as the job's user, so output files are
created by that user and root never opens a path the user controls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from oar_celery.node.environment import Account

#: Runs as the job's user: enter the directory, redirect, then become the user's shell.
_WRAPPER = 'cd "$1" || exit 126; exec >>"$2" 2>>"$3" || exit 126; shift 3; exec "$@"'


def start_job(
    account: Account,
    command: str,
    directory: str,
    stdout: str,
    stderr: str,
    env: dict[str, str],
    wrapper_errors: Path,
    tag: str,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with the user's shell; the wrapper's own errors go to ``wrapper_errors``."""
    argv = ["/bin/sh", "-c", _WRAPPER, tag, directory, stdout, stderr, account.shell, "-c", command]
    with open(wrapper_errors, "ab") as errors:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            cwd="/",
            env=env,
            start_new_session=True,
            close_fds=True,
            **account.popen_identity(),  # type: ignore[arg-type]
        )


def signal_number(value: int | str | None, default: int = signal.SIGUSR2) -> int:
    """A signal given as ``12``, ``"12"``, ``"USR2"`` or ``"SIGUSR2"``."""
    if value is None or value == "":
        return int(default)
    if isinstance(value, int) or str(value).strip().isdigit():
        return int(value)
    name = str(value).strip().upper()
    return int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; False if no process of the group is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def terminate_group(pgid: int) -> bool:
    """SIGTERM, then SIGCONT so that a stopped (suspended) job sees it."""
    alive = signal_group(pgid, signal.SIGTERM)
    signal_group(pgid, signal.SIGCONT)
    return alive


def has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, WITHOUT reaping it.

    While the leader is an unreaped zombie its pid cannot be reused, so the
    supervisor can still safely kill what is left of its group.
    """
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return result is not None


def exit_code(returncode: int) -> int:
    """The status a shell would show: ``128 + n`` for a death by signal ``n``."""
    return 128 - returncode if returncode < 0 else returncode


def reap(process: subprocess.Popen[bytes]) -> int:
    """Kill the rest of the group, reap the leader and return its shell-style status."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return exit_code(process.wait())
