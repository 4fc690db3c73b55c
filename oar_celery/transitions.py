"""Changes of a job's state, and the events that explain them.

Every move is a conditional update (``UPDATE jobs ... WHERE state IN
(expected)``): when two actors race, for example a node's end report and an
``oardel``, exactly one of them wins and the other sees that it changed
nothing. Every change that happens is logged in ``job_state_logs``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import case, insert, select, update
from sqlalchemy.orm import Session

from oar_celery.db.models import AssignedResource, EventLog, EventLogHostname, Job, JobStateLog
from oar_celery.db.session import now

logger = logging.getLogger(__name__)


def set_state(
    session: Session,
    job_ids: Iterable[int],
    new_state: str,
    *,
    expected: Sequence[str],
    at: float | None = None,
    **columns: object,
) -> list[int]:
    """Move the jobs still in one of ``expected`` to ``new_state``; the ids that moved."""
    ids = list(job_ids)
    if not ids:
        return []
    at = now() if at is None else at
    statement = (
        update(Job)
        .where(Job.job_id.in_(ids), Job.state.in_(expected))
        .values(state=new_state, **columns)
        .returning(Job.job_id)
        .execution_options(synchronize_session=False)
    )
    moved = list(session.scalars(statement))
    if moved:
        log_states(session, moved, new_state, at)
    return moved


def log_states(session: Session, job_ids: Sequence[int], new_state: str, at: float) -> None:
    """Close the jobs' current state log entries and open new ones."""
    session.execute(
        update(JobStateLog)
        .where(JobStateLog.job_id.in_(job_ids), JobStateLog.date_stop == 0)
        .values(date_stop=at)
        .execution_options(synchronize_session=False)
    )
    # a Core multi-row insert: the ORM's unit of work cost more than the updates themselves
    session.execute(
        insert(JobStateLog),
        [{"job_id": job_id, "job_state": new_state, "date_start": at, "date_stop": 0.0} for job_id in job_ids],
    )


def add_event(
    session: Session,
    kind: str,
    job_id: int,
    description: str,
    *,
    hosts: Iterable[str] = (),
    to_check: bool = False,
) -> None:
    """Record an event, OAR style: a type, a job, a text and the hosts it concerns."""
    event = EventLog(
        type=kind, job_id=job_id, date=now(), description=description[:4000], to_check="YES" if to_check else "NO"
    )
    session.add(event)
    hostnames = sorted(set(hosts))
    if hostnames:
        session.flush()
        session.add_all(EventLogHostname(event_id=event.event_id, hostname=host) for host in hostnames)
    logger.info("event %s job %s: %s", kind, job_id, description)


def release_resources(session: Session, job_ids: Sequence[int]) -> None:
    """Mark the jobs' resource assignments as history: the scheduler may reuse them."""
    if not job_ids:
        return
    moldables = select(Job.assigned_moldable_job).where(Job.job_id.in_(job_ids))
    session.execute(
        update(AssignedResource)
        .where(AssignedResource.moldable_job_id.in_(moldables), AssignedResource.assigned_resource_index == "CURRENT")
        .values(assigned_resource_index="LOG")
        .execution_options(synchronize_session=False)
    )


def finish(
    session: Session,
    job_ids: Sequence[int],
    new_state: str,
    *,
    expected: Sequence[str],
    message: str | None = None,
    exit_code: int | None = None,
) -> list[int]:
    """End jobs (``Terminated`` or ``Error``): stamp the stop time and free their resources."""
    at = now()
    columns: dict[str, object] = {"stop_time": at}
    if message is not None:
        columns["message"] = message
    if exit_code is not None:
        columns["exit_code"] = exit_code
    moved = set_state(session, job_ids, new_state, expected=expected, at=at, **columns)
    release_resources(session, moved)
    return moved


def finish_each(
    session: Session,
    ends: Mapping[int, tuple[str, int | None]],
    new_state: str,
    *,
    expected: Sequence[str],
) -> list[int]:
    """End many jobs in one statement, each with its own message and exit code (``None`` keeps it).

    A batch of node reports ends jobs with different texts; ``CASE`` on the
    job id keeps it one conditional ``UPDATE`` whatever the batch's size.
    """
    if not ends:
        return []
    at = now()
    messages = case({job_id: message for job_id, (message, _) in ends.items()}, value=Job.job_id)
    codes = {job_id: code for job_id, (_, code) in ends.items() if code is not None}
    columns: dict[str, object] = {"stop_time": at, "message": messages}
    if codes:
        columns["exit_code"] = case(codes, value=Job.job_id, else_=Job.exit_code)
    moved = set_state(session, list(ends), new_state, expected=expected, at=at, **columns)
    release_resources(session, moved)
    return moved
