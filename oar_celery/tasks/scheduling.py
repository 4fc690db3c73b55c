"""The scheduler's round trip: load the cluster, place jobs, write the Gantt back.

The placement itself is pure (:mod:`oar_celery.scheduler`); this module only
reads what it needs in a handful of bulk queries and writes the outcome:
jobs that start now go ``toLaunch`` with their resources (a conditional
update, so a job deleted meanwhile is not launched), every other placement is
stored as a prediction in ``gantt_jobs_predictions`` / ``gantt_jobs_resources``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import (
    ACTIVE_STATES,
    AssignedResource,
    FragJob,
    GanttJobResource,
    Job,
    MoldableJobDescription,
)
from oar_celery.db.session import now, session_scope
from oar_celery.resources import load_resources
from oar_celery.scheduler import is_besteffort, schedule
from oar_celery.scheduler import types as sched
from oar_celery.tasks import gantt_writes
from oar_celery.tasks.gantt_loads import load_types, load_waiting
from oar_celery.transitions import add_event, set_state

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one scheduler run decided, for logs and tests."""

    launched: list[int] = field(default_factory=list)
    predicted: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    besteffort_killed: list[int] = field(default_factory=list)


def run_scheduler() -> Outcome:
    """One scheduling round on the database; the Almighty cycle calls it."""
    at = int(now())
    with _collector_paused(), session_scope() as session:
        resources, columns = load_resources(session)
        placed, reservations = load_placed(session, at)
        waiting, blocked = load_waiting(session)
        result = plan(at, resources, placed, waiting, columns)
        placed_by_id = {a.job_id: a for a in placed}
        outcome = apply(session, at, result, waiting, reservations, blocked, placed_by_id)
    _resubmit_killed_besteffort(outcome.besteffort_killed)
    if outcome.launched or outcome.refused or outcome.besteffort_killed:
        from oar_celery.almighty import notify

        notify(["Qdel"] if outcome.besteffort_killed else [])
        logger.info(
            "scheduler: %d to launch, %d predicted, %d refused",
            len(outcome.launched), outcome.predicted, len(outcome.refused),
        )
    return outcome


def plan(
    at: int,
    resources: list[sched.Resource],
    placed: list[sched.Allocation],
    waiting: list[sched.Job],
    columns: dict[str, str],
) -> sched.SchedulingResult:
    """The pure scheduler with this cluster's settings (security time, hierarchy, resource order)."""
    config = settings()
    return schedule(
        at,
        resources,
        placed,
        waiting,
        security_time=config.security_time,
        hierarchy_labels=config.labels,
        resource_order=tuple(config.scheduler_resource_order.split(",")),
        columns=columns,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
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


def _resubmit_killed_besteffort(job_ids: list[int]) -> None:
    """OAR resubmits a besteffort job killed for a normal job when it is also ``idempotent``."""
    if not job_ids:
        return
    from oar_celery.tasks.submit import resubmit_if_idempotent

    for job_id in job_ids:
        try:
            resubmit_if_idempotent(job_id)
        except Exception:
            logger.exception("resubmission of besteffort job %s failed", job_id)


#: Running jobs with their resources, and the accepted reservations with theirs: built once, run every cycle.
_PLACED = (
    select(
        Job.job_id, Job.job_user, Job.start_time, Job.suspended_time, Job.assigned_moldable_job,
        MoldableJobDescription.moldable_walltime, AssignedResource.resource_id, Job.job_name,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
    .where(Job.state.in_(ACTIVE_STATES), AssignedResource.assigned_resource_index == "CURRENT")
)
_RESERVATIONS = (
    select(
        Job.job_id, Job.job_user, Job.start_time, Job.assigned_moldable_job,
        MoldableJobDescription.moldable_walltime, GanttJobResource.resource_id, Job.job_name,
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(GanttJobResource, GanttJobResource.moldable_job_id == Job.assigned_moldable_job)
    .where(Job.state.in_(("Waiting", "toAckReservation")), Job.reservation == "Scheduled")
)


def load_placed(session: Session, at: int) -> tuple[list[sched.Allocation], dict[int, sched.Allocation]]:
    """Running jobs and accepted reservations, as fixed allocations on the Gantt."""
    allocations: dict[int, sched.Allocation] = {}
    # names too: timesharing=*,name shares with running jobs of the same name
    for job_id, user, start, suspended, moldable, walltime, resource_id, name in session.execute(_PLACED):
        allocation = allocations.get(job_id)
        if allocation is None:
            begin = int(start) if start else at
            allocation = allocations[job_id] = sched.Allocation(
                job_id, moldable, begin, max(1, int(walltime + suspended)), [], user=user, name=name or ""
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
    for job_id, user, start, moldable, walltime, resource_id, name in session.execute(_RESERVATIONS):
        allocation = reservations.setdefault(
            job_id, sched.Allocation(job_id, moldable, int(start), int(walltime), [], user=user, name=name or "")
        )
        allocation.resource_ids.append(resource_id)
    return reservations


def apply(
    session: Session,
    at: int,
    result: sched.SchedulingResult,
    waiting: list[sched.Job],
    reservations: dict[int, sched.Allocation],
    blocked: dict[int, str],
    placed_by_id: dict[int, sched.Allocation] | None = None,
) -> Outcome:
    """Write a scheduling result: launches, reservations, predictions and refusals, in bulk."""
    outcome = Outcome()
    reservation_ids = {job.id for job in waiting if job.reservation_start is not None}
    kill = _besteffort_in_the_way(result, reservations, placed_by_id or {}, at)
    # As OAR: a job waits for the besteffort jobs killed for it to be gone before it starts.
    freeing = _resources_of(placed_by_id, kill)
    starting = [
        p for p in result.placements
        if p.start <= at and p.job_id not in reservation_ids and freeing.isdisjoint(p.resource_ids)
    ]
    due = [a for a in reservations.values() if a.start <= at and freeing.isdisjoint(a.resource_ids)]
    _reduce_late_reservations(session, due, at)
    outcome.launched = gantt_writes.launch(session, starting + due)
    _accept_reservations(session, [p for p in result.placements if p.job_id in reservation_ids])
    launched = set(outcome.launched)
    kept = [a for a in [*result.placements, *reservations.values()] if a.job_id not in launched]
    gantt_writes.replace_predictions(session, kept)
    outcome.predicted = len(result.placements) - len(starting)
    messages = dict(blocked)
    for job_id, reason in result.unplaceable.items():
        if job_id not in reservation_ids:
            messages[job_id] = reason
        elif set_state(session, [job_id], "toError", expected=("Waiting",), message=reason):
            outcome.refused[job_id] = reason
    gantt_writes.clear_scheduler_info(session, messages)
    gantt_writes.set_scheduler_info(session, messages)
    outcome.besteffort_killed = _frag_besteffort(session, kill)
    return outcome


def _besteffort_in_the_way(
    result: sched.SchedulingResult,
    reservations: dict[int, sched.Allocation],
    placed: dict[int, sched.Allocation],
    at: int,
) -> list[int]:
    """Besteffort jobs to kill: those the round named, and those on a reservation that starts now."""
    kill = list(result.besteffort_to_kill)
    due = set().union(*(a.resource_ids for a in reservations.values() if a.start <= at))
    for job_id, allocation in placed.items():
        if job_id in kill or job_id in reservations or not is_besteffort(allocation.types):
            continue
        if not due.isdisjoint(allocation.resource_ids):
            kill.append(job_id)
    return kill


def _resources_of(allocations: dict[int, sched.Allocation] | None, job_ids: list[int]) -> set[int]:
    found: set[int] = set()
    for job_id in job_ids:
        allocation = (allocations or {}).get(job_id)
        if allocation is not None:
            found.update(allocation.resource_ids)
    return found


def _accept_reservations(session: Session, placements: list[sched.Allocation]) -> None:
    for placement in placements:
        moved = set_state(
            session, [placement.job_id], "toAckReservation", expected=("Waiting",),
            reservation="Scheduled", start_time=float(placement.start), assigned_moldable_job=placement.moldable_id,
        )
        if moved:
            add_event(session, "RESERVATION_ACCEPTED", placement.job_id, f"reservation starts at {placement.start}")


def _reduce_late_reservations(session: Session, due: list[sched.Allocation], at: int) -> None:
    """A reservation starting after its start time runs for what remains of it (OAR3's meta_sched).

    Its start moves to now with the walltime, so that a cycle that reads it
    again (a launch put off) cuts only the time gone since.
    """
    for allocation in due:
        if allocation.start >= at:
            continue
        remaining = max(1, allocation.walltime - (at - allocation.start))
        session.execute(
            update(MoldableJobDescription)
            .where(MoldableJobDescription.moldable_id == allocation.moldable_id)
            .values(moldable_walltime=remaining)
        )
        session.execute(update(Job).where(Job.job_id == allocation.job_id).values(start_time=float(at)))
        add_event(session, "REDUCE_RESERVATION_WALLTIME", allocation.job_id,
                  f"Change walltime from {allocation.walltime} to {remaining}")


def _frag_besteffort(session: Session, job_ids: list[int]) -> list[int]:
    fragged: list[int] = []
    for job_id in job_ids:
        if session.get(FragJob, job_id) is None:
            session.add(FragJob(frag_id_job=job_id, frag_date=now(), frag_state="LEON"))
            add_event(session, "BESTEFFORT_KILL", job_id, "besteffort job killed to free resources for a job")
            fragged.append(job_id)
    return fragged
