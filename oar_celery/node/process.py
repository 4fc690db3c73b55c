"""The job's process group: starting it as its user, signalling it, seeing it end.

The job runs in a session of its own, so its pid is also its process group id
and one ``killpg`` reaches every process it started (short of those that start
a session of their own). When the worker switches to the job's user, the
redirections and the ``cd`` are done by a small ``sh`` wrapper that already
runs as that user, so output files are created by the user and root never
opens a path the user controls. A worker that already is the job's user
opens them itself and starts the user's shell directly: the wrapper's own
start cost as much as a short job's shell.
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
    """Start ``command`` with the user's shell; the wrapper's own errors go to ``wrapper_errors``.

    Without a change of user, a directory or output file that cannot be used
    raises :class:`OSError` here, as the wrapper's exit 126 would have told.
    """
    identity = account.popen_identity()
    shell = [account.shell, "-c", command]
    if not identity:
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            return _popen(shell, directory, env, out, err)
    argv = ["/bin/sh", "-c", _WRAPPER, tag, directory, stdout, stderr, *shell]
    with open(wrapper_errors, "ab") as errors:
        return _popen(argv, "/", env, subprocess.DEVNULL, errors, **identity)


def _popen(
    argv: list[str], cwd: str, env: dict[str, str], stdout: object, stderr: object, **identity: object
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload]
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        **identity,
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
