"""Changes of a job's state, and the events that explain them.

Every move is a conditional update (``UPDATE jobs ... WHERE state IN
(expected)``): when two actors race, for example a node's end report and an
``oardel``, exactly one of them wins and the other sees that it changed
nothing. Every change that happens is logged in ``job_state_logs``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import ClauseElement, TextClause, case, insert, select, text, update
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
    each: Mapping[str, Mapping[int, object]] | None = None,
    release: bool = False,
    **columns: object,
) -> list[int]:
    """Move the jobs still in one of ``expected`` to ``new_state``; the ids that moved.

    ``columns`` are set on every job that moves (a value, or a SQL expression
    such as ``Job.suspended_time + 3``); ``each`` gives a column a value per
    job (``exit_code`` ``None`` keeps the old one). ``release`` also frees
    the jobs' resources.
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return []
    at = now() if at is None else at
    each = {name: values for name, values in (each or {}).items() if values}
    in_one_statement = not any(isinstance(value, ClauseElement) for value in columns.values())
    if in_one_statement and session.get_bind().dialect.name == "postgresql":
        return _move_in_one_statement(session, ids, new_state, expected, at, each, release, columns)
    for name, values in each.items():
        given = {job_id: value for job_id, value in values.items() if value is not None}
        if given:
            columns[name] = case(given, value=Job.job_id, else_=getattr(Job, name))
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
        if release:
            release_resources(session, moved)
    return moved


#: PostgreSQL: a data-modifying CTE closing, at ``:at``, the open state log entries of the jobs in a
#: ``moved`` CTE (``job_id``, ``assigned_moldable_job``). Every statement that changes states uses it.
CLOSE_LOG_ENTRIES = (
    "closed AS (UPDATE job_state_logs SET date_stop = :at"
    " WHERE date_stop = 0 AND job_id IN (SELECT job_id FROM moved))"
)


def release_cte(only: str = "") -> str:
    """PostgreSQL: a CTE freeing the resources of the jobs in ``moved`` (``only``: a condition on its rows)."""
    condition = f" WHERE {only}" if only else ""
    return (
        "released AS (UPDATE assigned_resources SET assigned_resource_index = 'LOG'"
        " WHERE assigned_resource_index = 'CURRENT'"
        f" AND moldable_job_id IN (SELECT assigned_moldable_job FROM moved{condition}))"
    )


#: The SQL type of a column given per job, and what a job's value sets (``exit_code``: ``None`` keeps it).
_PER_JOB = {
    "message": ("text[]", "each.message"),
    "exit_code": ("integer[]", "COALESCE(each.exit_code, jobs.exit_code)"),
    "assigned_moldable_job": ("integer[]", "each.assigned_moldable_job"),
}


def _move_in_one_statement(
    session: Session,
    ids: list[int],
    new_state: str,
    expected: Sequence[str],
    at: float,
    each: Mapping[str, Mapping[int, object]],
    release: bool,
    columns: Mapping[str, object],
) -> list[int]:
    """PostgreSQL: the update, the state log and the release in one statement.

    Three to four statements per move, each built by SQLAlchemy, were most
    of the head's cost per job; this text is built once per shape.
    """
    statement = _move_statement(tuple(sorted(columns)), tuple(sorted(each)), release)
    parameters = {
        "job_ids": ids, "expected": list(expected), "new_state": new_state, "at": at, **columns,
        **{f"{name}_each": [values.get(job_id) for job_id in ids] for name, values in each.items()},
    }
    return list(session.scalars(statement, parameters))


@lru_cache(maxsize=64)
def _move_statement(columns: tuple[str, ...], per_job: tuple[str, ...], release: bool) -> TextClause:
    """``UPDATE jobs`` with data-modifying CTEs: the state log closes the old entries and opens new ones.

    All parts see the same snapshot, so the log update cannot touch the rows
    the insert adds.
    """
    unknown = [name for name in columns if name not in Job.__table__.c or name == "state"]
    unknown += [name for name in per_job if name not in _PER_JOB]
    if unknown:
        raise ValueError(f"not a column a state change may set: {', '.join(unknown)}")
    sets = ["state = :new_state", *(f"{c} = :{c}" for c in columns), *(f"{c} = {_PER_JOB[c][1]}" for c in per_job)]
    arrays = ", ".join(["CAST(:job_ids AS integer[])", *(f"CAST(:{c}_each AS {_PER_JOB[c][0]})" for c in per_job)])
    parts = [
        f"each AS (SELECT * FROM unnest({arrays}) AS each({', '.join(['job_id', *per_job])}))",
        f"moved AS (UPDATE jobs SET {', '.join(sets)} FROM each WHERE jobs.job_id = each.job_id"
        " AND jobs.state = ANY(CAST(:expected AS text[])) RETURNING jobs.job_id, jobs.assigned_moldable_job)",
        CLOSE_LOG_ENTRIES,
        "opened AS (INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)"
        " SELECT job_id, :new_state, :at, 0 FROM moved)",
    ]
    if release:
        parts.append(release_cte())
    return text(f"WITH {', '.join(parts)} SELECT job_id FROM moved")


def log_states(session: Session, job_ids: Sequence[int], new_state: str, at: float) -> None:
    """Close the jobs' current state log entries and open new ones (the path of other databases)."""
    session.execute(
        update(JobStateLog)
        .where(JobStateLog.job_id.in_(job_ids), JobStateLog.date_stop == 0)
        .values(date_stop=at)
        .execution_options(synchronize_session=False)
    )
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
    columns: dict[str, Any] = {"stop_time": at}
    if message is not None:
        columns["message"] = message
    if exit_code is not None:
        columns["exit_code"] = exit_code
    return set_state(session, job_ids, new_state, expected=expected, at=at, release=True, **columns)


def finish_each(
    session: Session,
    ends: Mapping[int, tuple[str, int | None]],
    new_state: str,
    *,
    expected: Sequence[str],
) -> list[int]:
    """End many jobs in one statement, each with its own message and exit code (``None`` keeps it).

    A batch of node reports ends jobs with different texts, each given per
    job: one conditional ``UPDATE`` whatever the batch's size.
    """
    if not ends:
        return []
    at = now()
    each: dict[str, Mapping[int, object]] = {
        "message": {job_id: message for job_id, (message, _) in ends.items()},
        "exit_code": {job_id: code for job_id, (_, code) in ends.items()},
    }
    return set_state(session, list(ends), new_state, expected=expected, at=at, each=each, release=True, stop_time=at)
