"""OAR's ``accounting`` table, filled as jobs end: core-seconds asked and used per user, project, queue, window.

OAR fills it when ``oaraccounting`` runs (from cron); here every move of a
started job to ``Terminated`` or ``Error`` accounts for it in the same
transaction (:func:`account`), so the karma of the next round already sees
it, and ``oaraccounting`` only catches up on jobs ended before (or with the
table reinitialized). A job is flagged ``accounted`` by a conditional
update whose returned ids are the only ones counted: a job is never counted
twice, whoever races.

A job's usage is cut into the windows it spans (``OAR_ACCOUNTING_WINDOW``
seconds, aligned on the epoch, ``window_stop`` inclusive as in OAR): ``USED``
from its start to its stop, ``ASKED`` from its start to start + walltime,
each times its number of ``default`` resources.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import Accounting, AssignedResource, Job, MoldableJobDescription, Resource
from oar_celery.db.prepared import Prepared
from oar_celery.protocol.states import JobState

#: One accounting row's key: window start and stop, user, project, queue, ASKED or USED.
Key = tuple[int, int, str, str, str, str]
ENDED = (JobState.TERMINATED, JobState.ERROR)


def windows(start: int, stop: int, size: int) -> list[tuple[int, int, int]]:
    """``(window_start, window_stop, seconds)`` of each window ``[start, stop)`` spans, as OAR cuts them."""
    cut: list[tuple[int, int, int]] = []
    window_start = (start // size) * size
    window_stop = window_start + size - 1
    while stop > start:
        seconds = stop - start if stop <= window_stop else window_stop - start + 1
        cut.append((window_start, window_stop, seconds))
        window_start = window_stop + 1
        start = window_start
        window_stop += size
    return cut


def consumptions(rows: Iterable[Sequence[Any]], size: int) -> dict[Key, int]:
    """Rows of (user, project, queue, start, stop, walltime, resources) → consumption per accounting key."""
    totals: dict[Key, int] = defaultdict(int)
    for user, project, queue, start, stop, walltime, count in rows:
        begin = int(start)
        for kind, end in (("USED", int(stop)), ("ASKED", begin + int(walltime))):
            for window_start, window_stop, seconds in windows(begin, end, size):
                totals[(window_start, window_stop, user, project or "", queue, kind)] += seconds * int(count)
    return totals


_JOBS: Any = Job.__table__
_ENDED_STARTED = (
    _JOBS.c.accounted == "NO",
    _JOBS.c.state.in_(ENDED),
    _JOBS.c.start_time > 1,
    _JOBS.c.stop_time >= _JOBS.c.start_time,
)
# Core statements, not ORM ones: an ORM ``UPDATE`` first works out which loaded objects it changes.
_FLAG = (
    update(_JOBS)
    .where(_JOBS.c.job_id.in_(bindparam("job_ids", expanding=True)), *_ENDED_STARTED)
    .values(accounted="YES")
    .returning(_JOBS.c.job_id)
)
_FLAG_ALL = update(_JOBS).where(*_ENDED_STARTED).values(accounted="YES").returning(_JOBS.c.job_id)
_USAGE = (
    select(
        Job.job_user, Job.project, Job.queue_name, Job.start_time, Job.stop_time,
        MoldableJobDescription.moldable_walltime, func.count(AssignedResource.resource_id),
    )
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
    .join(Resource, Resource.resource_id == AssignedResource.resource_id)
    .where(Job.job_id.in_(bindparam("job_ids", expanding=True)), Resource.type == "default")
    .group_by(
        Job.job_id, Job.job_user, Job.project, Job.queue_name, Job.start_time, Job.stop_time,
        MoldableJobDescription.moldable_walltime,
    )
)


def adding_usage(flagged: str) -> str:
    """PostgreSQL: CTEs adding to ``accounting`` the usage of the jobs of the CTE ``flagged``.

    ``flagged`` has the columns ``job_id, job_user, project, queue_name,
    start_time, stop_time, assigned_moldable_job``; ``:window`` is the
    windows' size. The same cut as :func:`consumptions`: each span, ``USED``
    [start, stop) and ``ASKED`` [start, start + walltime), over the windows it
    overlaps, times the job's ``default`` resources, summed per row key.
    """
    return f"""usage AS (
  SELECT f.job_user, COALESCE(f.project, '') AS project, f.queue_name,
         CAST(floor(f.start_time) AS bigint) AS b, CAST(floor(f.stop_time) AS bigint) AS e,
         CAST(m.moldable_walltime AS bigint) AS walltime, count(*) AS cores
  FROM {flagged} f
  JOIN moldable_job_descriptions m ON m.moldable_id = f.assigned_moldable_job
  JOIN assigned_resources ar ON ar.moldable_job_id = f.assigned_moldable_job
  JOIN resources r ON r.resource_id = ar.resource_id
  WHERE r.type = 'default'
  GROUP BY f.job_id, f.job_user, f.project, f.queue_name, f.start_time, f.stop_time, m.moldable_walltime
), spans AS (
  SELECT job_user, project, queue_name, 'USED' AS kind, b, e, cores FROM usage
  UNION ALL SELECT job_user, project, queue_name, 'ASKED', b, b + walltime, cores FROM usage
), cut AS (
  SELECT job_user, project, queue_name, kind, ws,
         sum((LEAST(e, ws + :window) - GREATEST(b, ws)) * cores) AS consumption
  FROM spans, generate_series((b / :window) * :window, e - 1, :window) AS ws
  WHERE e > b
  GROUP BY job_user, project, queue_name, kind, ws
), accounted AS (
  INSERT INTO accounting (window_start, window_stop, accounting_user, accounting_project, queue_name,
                          consumption_type, consumption)
  SELECT ws, ws + :window - 1, job_user, project, queue_name, kind, consumption FROM cut
  ON CONFLICT (window_start, window_stop, accounting_user, accounting_project, queue_name, consumption_type)
  DO UPDATE SET consumption = accounting.consumption + EXCLUDED.consumption
)"""


#: PostgreSQL: :func:`account` in one statement (flag, usage, upsert).
_ACCOUNT_AT_ONCE = Prepared("oar_account", f"""
WITH flagged AS (
  UPDATE jobs SET accounted = 'YES'
  WHERE job_id = ANY(CAST(:job_ids AS integer[])) AND accounted = 'NO' AND state IN ('Terminated', 'Error')
    AND start_time > 1 AND stop_time >= start_time
  RETURNING job_id, job_user, project, queue_name, start_time, stop_time, assigned_moldable_job
), {adding_usage("flagged")}
SELECT job_id FROM flagged
""", [("job_ids", "integer[]"), ("window", "bigint")])


def account(session: Session, job_ids: Sequence[int], size: int | None = None) -> list[int]:
    """Account for the ended, started, not yet accounted jobs among ``job_ids``; the ids accounted.

    On PostgreSQL it is one statement (:func:`account_at_once`), elsewhere
    three (:func:`account_in_steps`): the flag, the read of the flagged jobs'
    usage, the upsert of its windows.
    """
    if not job_ids:
        return []
    if session.connection().dialect.name == "postgresql":
        return account_at_once(session, job_ids, size)
    return account_in_steps(session, job_ids, size)


def account_in_steps(session: Session, job_ids: Sequence[int], size: int | None = None) -> list[int]:
    """:func:`account` on any database: flag the jobs, then read the usage of those flagged."""
    flagged = list(session.connection().execute(_FLAG, {"job_ids": list(job_ids)}).scalars())
    _add(session, flagged, size)
    return flagged


def account_at_once(session: Session, job_ids: Sequence[int], size: int | None = None) -> list[int]:
    """:func:`account` on PostgreSQL: flag, usage and upsert in one statement."""
    window = size or settings().accounting_window
    return list(_ACCOUNT_AT_ONCE.execute(session, {"job_ids": list(job_ids), "window": window}).scalars())


def account_all(session: Session, size: int | None = None) -> list[int]:
    """``oaraccounting``: account for every ended job not accounted yet."""
    flagged = list(session.connection().execute(_FLAG_ALL).scalars())
    _add(session, flagged, size)
    return flagged


def _add(session: Session, job_ids: list[int], size: int | None) -> None:
    if not job_ids:
        return
    window = size or settings().accounting_window
    totals: dict[Key, int] = defaultdict(int)
    for chunk_start in range(0, len(job_ids), 5000):
        rows = session.connection().execute(_USAGE, {"job_ids": job_ids[chunk_start:chunk_start + 5000]})
        for key, value in consumptions(rows, window).items():
            totals[key] += value
    if totals:
        add_consumptions(session, totals)


def add_consumptions(session: Session, totals: dict[Key, int]) -> None:
    """Add to the rows of these keys, creating those missing: one upsert statement."""
    connection = session.connection()
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    table: Any = Accounting.__table__
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[
            table.c.window_start, table.c.window_stop, table.c.accounting_user,
            table.c.accounting_project, table.c.queue_name, table.c.consumption_type,
        ],
        set_={"consumption": table.c.consumption + statement.excluded.consumption},
    )
    connection.execute(
        statement,
        [
            {
                "window_start": start, "window_stop": stop, "accounting_user": user, "accounting_project": project,
                "queue_name": queue, "consumption_type": kind, "consumption": value,
            }
            for (start, stop, user, project, queue, kind), value in totals.items()
        ],
    )


def reinitialize(session: Session) -> None:
    """``oaraccounting --reinitialize``: empty the table; every job is to be accounted again."""
    session.execute(delete(Accounting))
    session.execute(update(Job).where(Job.accounted == "YES").values(accounted="NO"))


def delete_before(session: Session, date: int) -> int:
    """``oaraccounting --delete-before``: drop the windows that end by ``date``; how many."""
    result = session.execute(delete(Accounting).where(Accounting.window_stop <= date))
    return int(getattr(result, "rowcount", 0) or 0)


def sums_by(
    session: Session, column: Any, queues: Sequence[str] | None, window_start: int, window_stop: int
) -> tuple[dict[str, float], dict[str, float]]:
    """ASKED and USED per value of ``column`` (user or project) over windows inside ``[start, stop]``."""
    query = (
        select(column, Accounting.consumption_type, func.sum(Accounting.consumption))
        .where(Accounting.window_start >= window_start, Accounting.window_stop <= window_stop)
        .group_by(column, Accounting.consumption_type)
    )
    if queues is not None:
        query = query.where(Accounting.queue_name.in_(list(queues)))
    asked: dict[str, float] = {}
    used: dict[str, float] = {}
    for value, kind, total in session.execute(query):
        (asked if kind == "ASKED" else used)[value] = float(total)
    return asked, used

