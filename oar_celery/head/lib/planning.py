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

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import (
    ACTIVE_STATES,
    AssignedResource,
    GanttJobResource,
    Job,
    MoldableJobDescription,
)
from oar_celery.db.session import execute
from oar_celery.head.lib.gantt_loads import load_types
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


#: Running jobs with their resources, and the accepted reservations with theirs: built once, run every cycle.
_PLACED = (
    select(
        Job.job_id, Job.job_user, Job.start_time, Job.suspended_time, Job.assigned_moldable_job,
        MoldableJobDescription.moldable_walltime, AssignedResource.resource_id, Job.job_name, Job.queue_name,
        Job.project,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
    .where(Job.state.in_(ACTIVE_STATES), AssignedResource.assigned_resource_index == "CURRENT")
)


_RESERVATIONS = (
    select(
        Job.job_id, Job.job_user, Job.start_time, Job.assigned_moldable_job,
        MoldableJobDescription.moldable_walltime, GanttJobResource.resource_id, Job.job_name, Job.queue_name,
        Job.project,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(GanttJobResource, GanttJobResource.moldable_job_id == Job.assigned_moldable_job)
    .where(Job.state.in_((JobState.WAITING, JobState.TO_ACK_RESERVATION)),
           Job.reservation == ReservationState.SCHEDULED)
)


def load_placed(session: Session, at: int) -> tuple[list[sched.Allocation], dict[int, sched.Allocation]]:
    """Running jobs and accepted reservations, as fixed allocations on the Gantt."""
    allocations: dict[int, sched.Allocation] = {}
    # names too: timesharing=*,name shares with running jobs of the same name
    for job_id, user, start, suspended, moldable, walltime, resource_id, name, queue, project in execute(
        session, _PLACED
    ):
        allocation = allocations.get(job_id)
        if allocation is None:
            begin = int(start) if start else at
            allocation = allocations[job_id] = sched.Allocation(
                job_id, moldable, begin, max(1, int(walltime + suspended)), [], user=user, name=name or "",
                queue=queue, project=project or "",
            )
        allocation.resource_ids.append(resource_id)
    reservations = _load_reservations(session)
    placed_ids = list(allocations) + list(reservations)
    types = load_types(session, placed_ids) if placed_ids else {}
    for allocation in [*allocations.values(), *reservations.values()]:
        allocation.types = types.get(allocation.job_id, {})
    return list(allocations.values()) + list(reservations.values()), reservations


def _load_reservations(session: Session) -> dict[int, sched.Allocation]:
    reservations: dict[int, sched.Allocation] = {}
    for job_id, user, start, moldable, walltime, resource_id, name, queue, project in execute(session, _RESERVATIONS):
        allocation = reservations.get(job_id)
        if allocation is None:
            allocation = reservations[job_id] = sched.Allocation(
                job_id, moldable, int(start), int(walltime), [], user=user, name=name or "", queue=queue,
                project=project or "",
            )
        allocation.resource_ids.append(resource_id)
    return reservations
