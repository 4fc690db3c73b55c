"""Bulk writes of a scheduling round: a fixed number of statements whatever the number of jobs.

OAR3 commits once per launched job, which is what makes its rounds take
minutes on a large queue. Here the launches are one conditional ``UPDATE``,
the stored Gantt is replaced with ``COPY`` on PostgreSQL (multi-row inserts
elsewhere), and scheduler messages are one ``UPDATE`` per distinct message.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, bindparam, delete, insert, text, update
from sqlalchemy.orm import Session

from oar_celery.db.models import AssignedResource, GanttJobPrediction, GanttJobResource, Job
from oar_celery.db.prepared import Prepared
from oar_celery.head.lib.launch import LAUNCH_COLUMNS
from oar_celery.head.lib.transitions import CLOSE_LOG_ENTRIES, set_state
from oar_celery.protocol.states import JobState
from oar_celery.scheduler import types as sched


def copy_rows(session: Session, table: Any, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Insert many rows at once: ``COPY FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere."""
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        copy_text(session, table, columns, "".join("\t".join(map(str, row)) + "\n" for row in rows))
        return
    connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def copy_text(session: Session, table: Any, columns: Sequence[str], data: str) -> None:
    """``COPY FROM STDIN`` of rows already in PostgreSQL's text format (PostgreSQL only)."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN", io.StringIO(data))
    finally:
        cursor.close()


_MOLDABLES: BindParameter[Any] = bindparam("moldables", expanding=True)
_UNASSIGN = delete(AssignedResource).where(AssignedResource.moldable_job_id.in_(_MOLDABLES))
_FORGET_RESOURCES = delete(GanttJobResource).where(GanttJobResource.moldable_job_id.in_(_MOLDABLES))
_FORGET_STARTS = delete(GanttJobPrediction).where(GanttJobPrediction.moldable_job_id.in_(_MOLDABLES))


def _delete_predictions(session: Session, moldables: list[int]) -> None:
    session.execute(_FORGET_RESOURCES, {"moldables": moldables})
    session.execute(_FORGET_STARTS, {"moldables": moldables})


def launch(session: Session, allocations: Sequence[sched.Allocation]) -> list[int]:
    """Move the jobs still ``Waiting`` to ``toLaunch`` with their moldable and resources; the ids that moved."""
    if not allocations:
        return []
    by_job = {a.job_id: a for a in allocations}
    moldable_of = {job_id: a.moldable_id for job_id, a in by_job.items()}
    moved = set_state(
        session, list(by_job), JobState.TO_LAUNCH, expected=(JobState.WAITING,),
        each={"assigned_moldable_job": moldable_of},
        scheduler_info="",
    )
    if moved:
        moldables = [moldable_of[job_id] for job_id in moved]
        session.execute(_UNASSIGN, {"moldables": moldables})
        copy_rows(
            session,
            AssignedResource.__table__,
            ("moldable_job_id", "resource_id", "assigned_resource_index"),
            ((by_job[j].moldable_id, r, "CURRENT") for j in moved for r in by_job[j].resource_ids),
        )
    return moved


#: PostgreSQL: the jobs to start now go from ``Waiting`` to ``Launching`` (``toLaunch`` logged on the way)
#: with their moldable and resources, and their predictions are deleted: one statement.
_START_AT_ONCE = Prepared("oar_start_at_once", f"""
WITH each AS (
  SELECT * FROM unnest(CAST(:job_ids AS integer[]), CAST(:moldables AS integer[])) AS each(job_id, moldable)
), picked AS (
  SELECT * FROM unnest(CAST(:picked_moldables AS integer[]), CAST(:picked_resources AS integer[]))
    AS picked(moldable, resource_id)
), moved AS (
  UPDATE jobs SET state = 'Launching', assigned_moldable_job = each.moldable, scheduler_info = ''
  FROM each WHERE jobs.job_id = each.job_id AND jobs.state = 'Waiting'
  RETURNING jobs.assigned_moldable_job, {", ".join(f"jobs.{c}" for c in LAUNCH_COLUMNS)}
), {CLOSE_LOG_ENTRIES}, opened AS (
  INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)
  SELECT job_id, 'toLaunch', :at, :at FROM moved UNION ALL SELECT job_id, 'Launching', :at, 0 FROM moved
), unassigned AS (
  DELETE FROM assigned_resources WHERE moldable_job_id IN (SELECT assigned_moldable_job FROM moved)
), assigned AS (
  INSERT INTO assigned_resources (moldable_job_id, resource_id, assigned_resource_index)
  SELECT picked.moldable, picked.resource_id, 'CURRENT' FROM picked
  JOIN moved ON moved.assigned_moldable_job = picked.moldable
  ON CONFLICT (moldable_job_id, resource_id) DO UPDATE SET assigned_resource_index = 'CURRENT'
), alternatives AS (
  SELECT alternative.moldable FROM unnest(CAST(:alternatives AS integer[]), CAST(:alternative_jobs AS integer[]))
    AS alternative(moldable, job_id)
  WHERE alternative.job_id IN (SELECT job_id FROM moved)
), forgot_starts AS (
  DELETE FROM gantt_jobs_predictions WHERE moldable_job_id IN (SELECT moldable FROM alternatives)
), forgot_resources AS (
  DELETE FROM gantt_jobs_resources WHERE moldable_job_id IN (SELECT moldable FROM alternatives)
)
SELECT {", ".join(LAUNCH_COLUMNS)} FROM moved
""", [
    ("job_ids", "integer[]"), ("moldables", "integer[]"), ("picked_moldables", "integer[]"),
    ("picked_resources", "integer[]"), ("alternatives", "integer[]"), ("alternative_jobs", "integer[]"),
    ("at", "double precision"),
])


def start_at_once(
    session: Session, allocations: Sequence[sched.Allocation], alternatives: Mapping[int, Collection[int]], at: float
) -> list[Any]:
    """PostgreSQL: start jobs now in one statement; a row of ``launch.LAUNCH_COLUMNS`` per job that moved.

    The quick round's launches took eight statements: :func:`launch`, the
    old assignments' and the predictions' deletes, the ``COPY`` of the
    resources, the Runner's ``toLaunch`` → ``Launching`` and the three
    reads of the launch specs; their parse and round trips were most of a
    quick round's cost. The update stays conditional (``Waiting`` only), so
    a job deleted meanwhile is not started, and each job's state log still
    shows ``toLaunch`` then ``Launching``. ``alternatives`` gives each job's
    moldable ids, whose stored predictions are deleted (and forgotten by this
    process): given here, they let PostgreSQL find the rows by their key
    whatever its statistics say of the tables' sizes.
    """
    if not allocations:
        return []
    picked = [(a.moldable_id, r) for a in allocations for r in a.resource_ids]
    others = [(m, a.job_id) for a in allocations for m in alternatives.get(a.job_id, ())]
    rows = _START_AT_ONCE.execute(session, {
        "job_ids": [a.job_id for a in allocations],
        "moldables": [a.moldable_id for a in allocations],
        "picked_moldables": [m for m, _ in picked],
        "picked_resources": [r for _, r in picked],
        "alternatives": [m for m, _ in others],
        "alternative_jobs": [j for _, j in others],
        "at": at,
    }).all()
    _forget_remembered({m for row in rows for m in alternatives.get(row.job_id, ())})
    return list(rows)


#: ``moldable_id → (start, resource ids)``: a stored prediction.
Predictions = dict[int, tuple[float, tuple[int, ...]]]


@dataclass
class _Written:
    """The predictions this process wrote last, and their fingerprint."""

    rows: Predictions
    fingerprint: tuple[int, int, float, int, int]


_last: _Written | None = None


def replace_predictions(session: Session, allocations: Sequence[sched.Allocation]) -> None:
    """Store this round's Gantt (``gantt_jobs_predictions`` / ``gantt_jobs_resources``).

    When the tables still hold what this process wrote last (their
    fingerprint says so) and less than half of the predictions moved, only
    the rows that changed are rewritten: a round that launches nothing, or
    little, then writes next to nothing. Otherwise the tables are replaced.
    """
    global _last
    wanted = {a.moldable_id: (float(a.start), tuple(a.resource_ids)) for a in allocations}
    last = _last
    _last = None  # until this round's rows are known to be what the tables hold
    if last is not None:
        changed = [m for m, row in wanted.items() if last.rows.get(m) != row]
        gone = [m for m in last.rows if m not in wanted]
        if len(changed) + len(gone) <= len(wanted) // 2 and _fingerprint(session) == last.fingerprint:
            _rewrite(session, wanted, changed + gone, changed)
            _last = _Written(wanted, _fingerprint_of(wanted))
            return
    _replace_all(session, wanted)
    _last = _Written(wanted, _fingerprint_of(wanted))


def forget_predictions(session: Session, moldable_ids: Collection[int]) -> None:
    """Delete the stored predictions of jobs started outside a full round (the quick round).

    The rows this process remembers lose the same moldables, so the next full
    round still finds the tables as it left them, less these, and rewrites
    only what moved.
    """
    if not moldable_ids:
        return
    _delete_predictions(session, list(set(moldable_ids)))
    _forget_remembered(set(moldable_ids))


def _forget_remembered(gone: set[int]) -> None:
    """Drop these moldables from the predictions this process remembers writing."""
    global _last
    if _last is not None and gone:
        rows = {m: row for m, row in _last.rows.items() if m not in gone}
        _last = _Written(rows, _fingerprint_of(rows))


def _fingerprint_of(rows: Predictions) -> tuple[int, int, float, int, int]:
    resources = [r for _, ids in rows.values() for r in ids]
    return len(rows), sum(rows), sum(start for start, _ in rows.values()), len(resources), sum(resources)


def _fingerprint(session: Session) -> tuple[int, int, float, int, int]:
    """Counts and sums of the stored Gantt: equal to the cached ones only if nobody else rewrote it."""
    row = session.execute(text(
        "SELECT (SELECT count(*) FROM gantt_jobs_predictions), (SELECT coalesce(sum(moldable_job_id), 0)"
        " FROM gantt_jobs_predictions), (SELECT coalesce(sum(start_time), 0) FROM gantt_jobs_predictions),"
        " (SELECT count(*) FROM gantt_jobs_resources), (SELECT coalesce(sum(resource_id), 0) FROM gantt_jobs_resources)"
    )).one()
    return int(row[0]), int(row[1]), float(row[2]), int(row[3]), int(row[4])


def _rewrite(session: Session, wanted: Predictions, stale: list[int], changed: list[int]) -> None:
    if stale:
        _delete_predictions(session, stale)
    _copy_predictions(session, {m: wanted[m] for m in changed})


#: One statement either way, so that a round's statements stay a fixed number.
_TRUNCATE_UNLESS_EMPTY = text(
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM gantt_jobs_predictions) OR EXISTS (SELECT 1 FROM gantt_jobs_resources)"
    " THEN TRUNCATE gantt_jobs_resources, gantt_jobs_predictions; END IF; END $$"
)


def _replace_all(session: Session, wanted: Predictions) -> None:
    """On PostgreSQL the tables are truncated: deleting every row each round
    leaves dead rows that make the next ``COPY`` slower and slower, while
    ``TRUNCATE`` + ``COPY`` in one transaction stays fast. Its lock is taken
    at the very end of the round, so readers wait for milliseconds. Tables
    with no row (a new cluster, an emptied queue) are not truncated: that
    costs more (5 ms) than looking.
    """
    if session.connection().dialect.name == "postgresql":
        session.execute(_TRUNCATE_UNLESS_EMPTY)
    else:
        session.execute(delete(GanttJobResource))
        session.execute(delete(GanttJobPrediction))
    _copy_predictions(session, wanted)


def _copy_predictions(session: Session, rows: Predictions) -> None:
    starts, resources = ("moldable_job_id", "start_time"), ("moldable_job_id", "resource_id")
    if not rows:
        return
    if session.connection().dialect.name == "postgresql":
        copy_text(session, GanttJobPrediction.__table__, starts, "".join(f"{m}\t{s}\n" for m, (s, _) in rows.items()))
        copy_text(session, GanttJobResource.__table__, resources, _resource_lines(rows))
        return
    copy_rows(session, GanttJobPrediction.__table__, starts, ((m, start) for m, (start, _) in rows.items()))
    copy_rows(session, GanttJobResource.__table__, resources, ((m, r) for m, (_, ids) in rows.items() for r in ids))


def _resource_lines(rows: Predictions) -> str:
    """``moldable\tresource`` lines, joined a moldable at a time: a row at a time cost
    three times as much (30 ms for the 70,000 rows of 10,000 jobs)."""
    return "".join(f"{m}\t" + f"\n{m}\t".join(map(str, ids)) + "\n" for m, (_, ids) in rows.items() if ids)


def set_scheduler_info(session: Session, messages: Mapping[int, str]) -> None:
    """Store why jobs wait: one ``UPDATE`` per distinct message, skipping jobs that already say it."""
    by_message: dict[str, list[int]] = defaultdict(list)
    for job_id, message in messages.items():
        by_message[message].append(job_id)
    for message, job_ids in by_message.items():
        session.execute(
            update(Job)
            .where(Job.job_id.in_(job_ids), Job.scheduler_info.is_distinct_from(message))
            .values(scheduler_info=message)
            .execution_options(synchronize_session=False)
        )


def clear_scheduler_info(session: Session, keep: Iterable[int]) -> None:
    """Forget old messages of waiting jobs that this round placed (all but ``keep``)."""
    statement = update(Job).where(Job.state == JobState.WAITING, Job.scheduler_info != "")
    kept = list(keep)
    if kept:
        statement = statement.where(Job.job_id.not_in(kept))
    session.execute(statement.values(scheduler_info="").execution_options(synchronize_session=False))
