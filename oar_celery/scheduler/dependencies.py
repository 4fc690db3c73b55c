"""What a ``-a`` dependency means for the job that waits on it, as OAR3's scheduler decides.

OAR3 (``oar/kao/scheduling.py``, same as OAR 2.5): a dependency on a job in
``Error`` is ignored (a killed or failed job does not hold its dependents
forever), one on a ``Terminated`` job with exit code 0 is satisfied, one on
a ``Terminated`` job with another exit code keeps the dependent job from
ever being scheduled. A dependency on a job that has not ended makes the
dependent job start after it.
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    """How one dependency weighs on the job that names it."""

    SATISFIED = "satisfied"
    IGNORED = "ignored"
    PENDING = "pending"
    BLOCKED = "blocked"
    HELD = "held"


def verdict(state: str, exit_code: int | None) -> Verdict:
    """The rule for a required job in ``state`` with ``exit_code`` (a wait status, ``None`` if unset)."""
    if state == "Error":
        return Verdict.IGNORED
    if state == "Terminated":
        return Verdict.SATISFIED if not exit_code else Verdict.BLOCKED
    if state == "Hold":
        return Verdict.HELD
    return Verdict.PENDING


def blocked_message(required_id: int, exit_code: int | None) -> str:
    """The dependent job's message, saying why it will not be scheduled."""
    from oar_celery.wait_status import exit_value

    return (
        f"Cannot determine scheduling time due to dependency with the job {required_id} "
        f"(Terminated with exit code {exit_value(exit_code)})"
    )
