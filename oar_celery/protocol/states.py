"""OAR's states, as the database stores them and the commands print them.

String enums: a member is its own text, so it goes into SQL, JSON and
``oarstat`` unchanged, and a misspelt state is an AttributeError instead of
a query that silently matches nothing.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's ``state`` column (OAR's job state machine)."""

    WAITING = "Waiting"
    HOLD = "Hold"
    TO_LAUNCH = "toLaunch"
    TO_ERROR = "toError"
    TO_ACK_RESERVATION = "toAckReservation"
    LAUNCHING = "Launching"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    RESUMING = "Resuming"
    FINISHING = "Finishing"
    TERMINATED = "Terminated"
    ERROR = "Error"


#: The states a job never leaves.
FINAL_STATES = (JobState.TERMINATED, JobState.ERROR)
#: Every other state: the jobs in the system now. Queries select them with ``state IN`` these, which the
#: state index answers from the few live jobs' entries; ``NOT IN`` the final states reads every row of history.
CURRENT_STATES = tuple(state for state in JobState if state not in FINAL_STATES)
#: States of a job whose processes may exist on its nodes.
STARTED_STATES = (JobState.LAUNCHING, JobState.RUNNING, JobState.SUSPENDED, JobState.RESUMING, JobState.FINISHING)
#: States in which a job holds its resources.
ACTIVE_STATES = (JobState.TO_LAUNCH, *STARTED_STATES)
#: States of a job that has not been sent to a node yet.
NOT_STARTED_STATES = (
    JobState.WAITING, JobState.HOLD, JobState.TO_LAUNCH, JobState.TO_ACK_RESERVATION, JobState.TO_ERROR,
)


class ResourceState(StrEnum):
    """A resource's ``state`` (and ``next_state``) column."""

    ALIVE = "Alive"
    ABSENT = "Absent"
    SUSPECTED = "Suspected"
    DEAD = "Dead"


class FragState(StrEnum):
    """A frag request's state (``frag_jobs.frag_state``): Leon's and Sarko's part of ``oardel``."""

    LEON = "LEON"
    TIMER_ARMED = "TIMER_ARMED"
    FRAGGED = "FRAGGED"
    LEON_EXTERMINATE = "LEON_EXTERMINATE"


class ReservationState(StrEnum):
    """A job's ``reservation`` column: ``None`` for a batch job, then an advance reservation's progress."""

    NONE = "None"
    TO_SCHEDULE = "toSchedule"
    SCHEDULED = "Scheduled"
