"""Exit statuses as OAR keeps them: the ``wait(2)`` status, not the shell's number.

OAR's ``jobs.exit_code`` is what ``waitpid`` gave bipbip: the exit code in
the high byte (``exit 3`` is stored as 768, shown by oarstat as ``768 (3,0,0)``),
or the signal that killed the process in the low byte. Nodes report the
shell's number (``128 + n`` for a death by signal ``n``); the head turns it
into OAR's form once, when it stores it, so that scripts reading the
database or ``oarstat -J`` see what OAR shows them.
"""

from __future__ import annotations

#: Reasons for which a status above 128 means "killed by signal status - 128".
KILLED_REASONS = ("killed", "walltime")


def wait_status(shell_status: int | None, reason: str = "exited") -> int | None:
    """The node's shell-style status as OAR's wait status.

    A job that ended by itself keeps its number as exit code (a shell that
    ran a command killed by a signal exits ``128 + n`` itself); a job the
    system killed died of the signal.
    """
    if shell_status is None:
        return None
    if reason in KILLED_REASONS and 128 < shell_status < 128 + 65:
        return shell_status - 128
    return (shell_status & 0xFF) << 8


def exit_value(status: int | None) -> int | None:
    """The exit code in a wait status (``768`` → 3), as ``$?`` would show it."""
    return None if status is None else (status >> 8) & 0xFF


def status_text(status: int | None) -> str:
    """oarstat's ``exit_code`` field: ``768 (3,0,0)`` = status (exit value, signal, core dumped)."""
    if status is None:
        return ""
    return f"{status} ({(status >> 8) & 0xFF},{status & 0x7F},{1 if status & 0x80 else 0})"
