"""What a scheduling round needs on the head: the Gantt's fixed part and the pure scheduler's call.

The full round (:mod:`oar_celery.head.scheduling`) and the quick round
(:mod:`oar_celery.head.quick_round`) load running jobs and reservations the same
way, and call the pure scheduler with the same settings.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    and_,
    cast,
    exists,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import (
    ACTIVE_STATES,
    AssignedResource,
    GanttJobResource,
    Job,
    JobType,
    MoldableJobDescription,
)
from oar_celery.db.prepared import Prepared
from oar_celery.protocol.states import JobState, ReservationState
from oar_celery.scheduler import schedule
from oar_celery.scheduler import types as sched
from oar_celery.scheduler.quotas import Quotas
from oar_celery.scheduler.tokens import parse_tokens

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one scheduler run decided, for logs and tests."""

    launched: list[int] = field(default_factory=list)
    predicted: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    besteffort_killed: list[int] = field(default_factory=list)


def plan(
    config: Settings,
    at: int,
    resources: list[sched.Resource],
    placed: list[sched.Allocation],
    waiting: list[sched.Job],
    columns: dict[str, str],
    quotas: Quotas | None = None,
) -> sched.SchedulingResult:
    """The pure scheduler with this cluster's settings (security time, hierarchy, resource order, quotas)."""
    return schedule(
        at,
        resources,
        placed,
        waiting,
        security_time=config.security_time,
        hierarchy_labels=config.labels,
        resource_order=tuple(config.scheduler_resource_order.split(",")),
        columns=columns,
        tokens=parse_tokens(config.tokens),
        quotas=quotas,
    )


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during the round.

    A round builds tens of thousands of objects (rows, jobs, moldables,
    placements) that live until its end and die by reference counting. While
    they live they count as survivors, and push the collector into full
    passes over the whole process heap (SQLAlchemy, Celery): up to 0.1 s of a
    10,000-job round. Paused, they are freed without ever being counted.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: The kinds of row of :data:`_PLACED_AT_ONCE`.
_PLACED_ROW, _RESERVED_ROW, _TYPE_ROW, _ANSWER_ROW = "placed", "reserved", "type", "answer"
_NO_INTEGER = cast(null(), Integer)
_NO_TEXT = cast(null(), String)
#: The jobs whose allocation is fixed, each part on its own index: started, or accepted reservations.
_STARTED = Job.state.in_(ACTIVE_STATES)
_ACCEPTED = and_(Job.state.in_((JobState.WAITING, JobState.TO_ACK_RESERVATION)),
                 Job.reservation == ReservationState.SCHEDULED)


def _types_of(fixed: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """The ``-t`` type rows of the jobs ``fixed`` selects."""
    return select(
        literal_column(f"'{_TYPE_ROW}'"), JobType.job_id, _NO_TEXT, *[_NO_INTEGER] * 5, *[_NO_TEXT] * 3,
        JobType.type,
    ).where(JobType.types_index == "CURRENT", JobType.job_id.in_(select(Job.job_id).where(fixed)))


#: Running jobs with their resources, the accepted reservations with theirs, the ``-t`` types of both and
#: whether a reservation waits for its answer: one statement, built once, run every cycle (they were four
#: round trips). Each row's first column says which part it belongs to.
_PLACED_AT_ONCE: CompoundSelect = union_all(
    select(
        literal_column(f"'{_PLACED_ROW}'"), Job.job_id, Job.job_user, Job.start_time, Job.suspended_time,
        Job.assigned_moldable_job, MoldableJobDescription.moldable_walltime, AssignedResource.resource_id,
        Job.job_name, Job.queue_name, Job.project, _NO_TEXT,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
    .where(_STARTED, AssignedResource.assigned_resource_index == "CURRENT"),
    select(
        literal_column(f"'{_RESERVED_ROW}'"), Job.job_id, Job.job_user, Job.start_time, _NO_INTEGER,
        Job.assigned_moldable_job, MoldableJobDescription.moldable_walltime, GanttJobResource.resource_id,
        Job.job_name, Job.queue_name, Job.project, _NO_TEXT,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(GanttJobResource, GanttJobResource.moldable_job_id == Job.assigned_moldable_job)
    .where(_ACCEPTED),
    _types_of(_STARTED),
    _types_of(_ACCEPTED),
    select(literal_column(f"'{_ANSWER_ROW}'"), _NO_INTEGER, _NO_TEXT, *[_NO_INTEGER] * 5, *[_NO_TEXT] * 4)
    .where(exists().where(Job.state == JobState.WAITING, Job.reservation == ReservationState.TO_SCHEDULE)),
)


#: Prepared on PostgreSQL: planning the union took 0.7 ms of its 0.85 ms in the database, every cycle.
_PLACED_PREPARED = Prepared.of("oar_placed_at_once", _PLACED_AT_ONCE)


@dataclass
class Placed:
    """What is fixed on the Gantt: running jobs and accepted reservations, as allocations."""

    allocations: list[sched.Allocation]
    reservations: dict[int, sched.Allocation]
    #: Whether a new reservation waits for its answer (a full round's to give).
    answers_due: bool


def load_placed(session: Session, at: int) -> tuple[list[sched.Allocation], dict[int, sched.Allocation]]:
    """Running jobs and accepted reservations, as fixed allocations on the Gantt."""
    placed = load_fixed(session, at)
    return placed.allocations, placed.reservations


def load_fixed(session: Session, at: int) -> Placed:
    """:func:`load_placed`'s allocations, and whether a reservation waits for its answer: one round trip."""
    allocations: dict[int, sched.Allocation] = {}
    reservations: dict[int, sched.Allocation] = {}
    types: dict[int, dict[str, str]] = {}
    answers_due = False
    rows: Any = _PLACED_PREPARED.execute(session, {})
    # names too: timesharing=*,name shares with running jobs of the same name
    for kind, job_id, user, start, suspended, moldable, walltime, resource_id, name, queue, project, kind_of in rows:
        if kind == _TYPE_ROW:
            type_name, _, value = kind_of.partition("=")
            types.setdefault(job_id, {})[type_name] = value
            continue
        if kind == _ANSWER_ROW:
            answers_due = True
            continue
        into = allocations if kind == _PLACED_ROW else reservations
        allocation = into.get(job_id)
        if allocation is None:
            begin = (int(start) if start else at) if kind == _PLACED_ROW else int(start)
            length = max(1, int(walltime + suspended)) if kind == _PLACED_ROW else int(walltime)
            allocation = into[job_id] = sched.Allocation(
                job_id, moldable, begin, length, [], user=user, name=name or "", queue=queue, project=project or "",
            )
        allocation.resource_ids.append(resource_id)
    for allocation in [*allocations.values(), *reservations.values()]:
        allocation.types = types.get(allocation.job_id, {})
    return Placed(list(allocations.values()) + list(reservations.values()), reservations, answers_due)
