"""The scheduler's round trip: load the cluster, place jobs, write the Gantt back.

The placement itself is pure (:mod:`oar_celery.scheduler`); this module only
reads what it needs in a handful of bulk queries and writes the outcome:
jobs that start now go ``toLaunch`` with their resources (a conditional
update, so a job deleted meanwhile is not launched), every other placement is
stored as a prediction in ``gantt_jobs_predictions`` / ``gantt_jobs_resources``.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.db.models import FragJob, Job, MoldableJobDescription
from oar_celery.db.session import now, session_scope
from oar_celery.head.lib import gantt_writes
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.fairshare import apply_karma, record_karma
from oar_celery.head.lib.gantt_loads import load_waiting
from oar_celery.head.lib.inner import end_orphans
from oar_celery.head.lib.planning import Outcome, collector_paused, load_placed, plan
from oar_celery.head.lib.quota_rules import quotas_for
from oar_celery.head.lib.resources import load_resources
from oar_celery.head.lib.transitions import add_event, set_state
from oar_celery.head.lib.walltime_changes import grant_pending
from oar_celery.protocol.states import FragState, JobState, ReservationState
from oar_celery.scheduler import is_besteffort
from oar_celery.scheduler import types as sched

logger = logging.getLogger(__name__)


def run_scheduler(context: Context) -> Outcome:
    """One scheduling round on the database; the Almighty cycle calls it."""
    at = int(context.now())
    with collector_paused(), session_scope() as session:
        orphans = end_orphans(session)
        resources, columns = load_resources(session)
        placed, reservations = load_placed(session, at)
        if context.settings.walltime_change_enabled:
            grant_pending(session, context.settings, at, placed)
        waiting, blocked = load_waiting(session)
        apply_karma(session, context.settings, at, waiting)
        quotas = quotas_for(context.settings, resources)
        result = plan(context.settings, at, resources, placed, waiting, columns, quotas)
        placed_by_id = {a.job_id: a for a in placed}
        outcome = apply(session, at, result, waiting, reservations, blocked, placed_by_id)
        record_karma(session, context.settings, outcome.launched, waiting)
    _resubmit_killed_besteffort(outcome.besteffort_killed)
    if outcome.launched or outcome.refused or outcome.besteffort_killed or orphans:
        from oar_celery.protocol.bus import notify

        notify(["Qdel"] if outcome.besteffort_killed or orphans else [])
        logger.info(
            "scheduler: %d to launch, %d predicted, %d refused",
            len(outcome.launched), outcome.predicted, len(outcome.refused),
        )
    return outcome


def _resubmit_killed_besteffort(job_ids: list[int]) -> None:
    """OAR resubmits a besteffort job killed for a normal job when it is also ``idempotent``."""
    if not job_ids:
        return
    from oar_celery.head.lib.resubmission import resubmit_if_idempotent

    for job_id in job_ids:
        try:
            resubmit_if_idempotent(job_id)
        except Exception:
            logger.exception("resubmission of besteffort job %s failed", job_id)


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
    messages = {**result.notes, **blocked}
    for job_id, reason in result.unplaceable.items():
        if job_id not in reservation_ids:
            messages[job_id] = reason
        elif set_state(session, [job_id], JobState.TO_ERROR, expected=(JobState.WAITING,), message=reason):
            outcome.refused[job_id] = reason
    gantt_writes.store_scheduler_info(session, messages)
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
    """The reservations placed this round wait for their client: one state change for all of them."""
    if not placements:
        return
    moved = set(set_state(
        session, [p.job_id for p in placements], JobState.TO_ACK_RESERVATION, expected=(JobState.WAITING,),
        each={"start_time": {p.job_id: float(p.start) for p in placements},
              "assigned_moldable_job": {p.job_id: p.moldable_id for p in placements}},
        reservation=ReservationState.SCHEDULED,
    ))
    for placement in placements:
        if placement.job_id in moved:
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
    """Frag the besteffort jobs in the way that are not fragged yet (one query for which are)."""
    if not job_ids:
        return []
    already = set(session.scalars(select(FragJob.frag_id_job).where(FragJob.frag_id_job.in_(job_ids))))
    fragged: list[int] = []
    for job_id in dict.fromkeys(job_ids):
        if job_id not in already:
            session.add(FragJob(frag_id_job=job_id, frag_date=now(), frag_state=FragState.LEON))
            add_event(session, "BESTEFFORT_KILL", job_id, "besteffort job killed to free resources for a job")
            fragged.append(job_id)
    return fragged
