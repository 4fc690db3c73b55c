"""The job's keeper and process group: starting them as the job's user, signalling them, seeing them end.

Every job runs under a keeper, a shell of its own session that runs the job
in the foreground, then writes its exit status to the job directory's
``exit`` file (its standard output) and exits with it. The worker is the
keeper's parent, but the job does not depend on it: a worker that dies or
restarts leaves keeper and job running, and the next worker reads the exit
status from the file, whoever reaped the keeper. Two processes per job, the
fewest a keeper allows, and one exec for the usual shells: the keeper is the
user's own ``bash`` (or ``sh``), which runs the command in a subshell (a
fork); another shell is exec'd by a ``/bin/sh`` keeper (a second exec, a
millisecond more per job).

The keeper runs as the job's user and does the ``cd`` and the redirections
itself, so output files are created by the user and root never opens a path
the user controls. It catches the signals the node sends to the job's process
group (they reach the job, the keeper lives on to record the status), and it
waits on its standard input until the worker has put it in the job's cgroup
or CPU set and recorded it (:func:`release`), so that the job starts confined
and a worker that dies meanwhile leaves no unconfined job behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from oar_celery.node.environment import Account

#: What both keepers do first: catch what the node signals, wait to be confined, enter the
#: directory and open the output files (failures go to the launch errors file), then silence their
#: own stderr, where a shell reports a job killed by a signal.
_KEEPER_START = (
    "trap : HUP INT QUIT ABRT USR1 USR2 PIPE ALRM TERM; read go; [ \"$go\" = go ] || exit 125; "
    'cd "$1" || exit 126; exec 3>>"$2" 4>>"$3" || exit 126; exec 2>/dev/null; '
)
_KEEPER_END = " </dev/null >&3 2>&4 3>&- 4>&-; s=$?; echo $s; exit $s"
#: A Bourne shell keeper runs the command in a subshell of its own: a fork, no second exec. The
#: subshell's caught signals are back to their defaults, ``$$`` is the job's process group, as it
#: was the job's shell's before, and ``$0`` is the shell.
KEEPER_SUBSHELL = _KEEPER_START + '__oar_cmd=$4; shift 4; (set --; eval "$__oar_cmd")' + _KEEPER_END
#: Any other shell (csh, fish, ...) is exec'd by a ``/bin/sh`` keeper, in the foreground.
KEEPER_EXEC = _KEEPER_START + 'shift 3; "$@"' + _KEEPER_END
#: Shells that run the keeper's own script and the user's command alike.
BOURNE_SHELLS = ("bash", "sh", "dash")


def keeper_argv(shell: str, command: str, directory: str, stdout: str, stderr: str) -> list[str]:
    """The keeper's command line for a job run with ``shell``."""
    if Path(shell).name in BOURNE_SHELLS:
        return [shell, "-c", KEEPER_SUBSHELL, shell, directory, stdout, stderr, command]
    return ["/bin/sh", "-c", KEEPER_EXEC, shell, directory, stdout, stderr, shell, "-c", command]


def start_job(
    account: Account,
    command: str,
    directory: str,
    stdout: str,
    stderr: str,
    env: dict[str, str],
    files: tuple[Path, Path],
) -> subprocess.Popen[bytes]:
    """Start the keeper of ``command``, waiting to be released; ``files`` are its (exit, errors) files."""
    exit_path, errors_path = files
    argv = keeper_argv(account.shell, command, directory, stdout, stderr)
    # plain descriptors: the keeper's two files need no Python file objects of ours
    exit_file = os.open(exit_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        errors = os.open(errors_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            return subprocess.Popen(  # type: ignore[call-overload]
                argv,
                stdin=subprocess.PIPE,
                stdout=exit_file,
                stderr=errors,
                cwd="/",
                env=env,
                start_new_session=True,
                close_fds=True,
                **account.popen_identity(),
            )
        finally:
            os.close(errors)
    finally:
        os.close(exit_file)


def release(keeper: subprocess.Popen[bytes]) -> None:
    """Let the keeper start the job; a keeper whose worker died before this never starts it."""
    assert keeper.stdin is not None
    with keeper.stdin:
        keeper.stdin.write(b"go\n")


def read_exit(path: Path | str) -> int | None:
    """The status the keeper recorded, None if it has not (yet)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if no live process has it.

    Recorded with a keeper's pid, it tells a restarted worker whether that pid
    is still the keeper or was reused by another process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


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




def has_exited(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` has exited, WITHOUT reaping it when it is our child.

    While our child is an unreaped zombie its pid cannot be reused, so the
    supervisor can still safely kill what is left of its group. A keeper a
    previous worker started is not our child: ``started`` (its start time)
    tells whether it still runs.
    """
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        now = start_time(pid)
        return now is None or (started is not None and now != started)
    return result is not None


def exit_code(returncode: int) -> int:
    """The status a shell would show: ``128 + n`` for a death by signal ``n``."""
    return 128 - returncode if returncode < 0 else returncode
