"""Bulk writes of a scheduling round: a fixed number of statements whatever the number of jobs.

OAR3 commits once per launched job, which is what makes its rounds take
minutes on a large queue. Here the launches are one conditional ``UPDATE``,
the stored Gantt is replaced with ``COPY`` on PostgreSQL (multi-row inserts
elsewhere), and scheduler messages are one ``UPDATE`` per distinct message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from oar_celery.db.bulk import copy_rows, copy_text
from oar_celery.db.models import GanttJobPrediction, GanttJobResource, Job
from oar_celery.head.lib.store import store_for
from oar_celery.head.lib.store.generic import forget_predictions as delete_predictions
from oar_celery.protocol.states import JobState
from oar_celery.scheduler import types as sched


def launch(session: Session, allocations: Sequence[sched.Allocation]) -> list[int]:
    """Move the jobs still ``Waiting`` to ``toLaunch`` with their moldable and resources; the ids that moved."""
    return store_for(session).to_launch(session, allocations)


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
    delete_predictions(session, moldable_ids)
    forget_remembered(set(moldable_ids))


def forget_remembered(gone: set[int]) -> None:
    """Drop these moldables from the predictions this process remembers writing.

    The fingerprint loses their share, so a quick round that starts a few of
    thousands of predicted jobs costs a few steps, not a copy of them all
    (starts are whole seconds: the sums stay exact).
    """
    if _last is None:
        return
    count, moldables, starts, resources, resource_sum = _last.fingerprint
    for moldable in gone & _last.rows.keys():
        start, ids = _last.rows.pop(moldable)
        count, moldables, starts = count - 1, moldables - moldable, starts - start
        resources, resource_sum = resources - len(ids), resource_sum - sum(ids)
    _last.fingerprint = (count, moldables, starts, resources, resource_sum)


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
        delete_predictions(session, stale)
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


#: The waiting jobs that say something, and what.
_WAITING_MESSAGES = select(Job.job_id, Job.scheduler_info).where(
    Job.state == JobState.WAITING, Job.scheduler_info != ""
)
#: New messages in one statement: job ids and the index of their message in an array of the distinct ones.
_SET_MESSAGES = text(
    "UPDATE jobs SET scheduler_info = (CAST(:texts AS text[]))[w.k]"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:ks AS integer[])) AS w(job_id, k)"
    " WHERE jobs.job_id = w.job_id AND jobs.scheduler_info IS DISTINCT FROM (CAST(:texts AS text[]))[w.k]"
)


def store_scheduler_info(session: Session, messages: Mapping[int, str]) -> None:
    """Why jobs wait (``messages``); the waiting jobs that this round placed forget their old message.

    On PostgreSQL: one read of the messages the waiting jobs have, and one
    ``UPDATE`` of those that change, the ids in an array parameter (the
    ``IN`` lists of one ``UPDATE`` per message cost 0.1–0.3 s to build and send
    for 10,000 jobs held by quotas, each round). The difference is taken here
    rather than in SQL: an anti-join of the waiting jobs with the ids sent,
    planned on stale statistics, ran as a nested loop (seconds). Elsewhere,
    :func:`clear_scheduler_info` then :func:`set_scheduler_info`.
    """
    if session.connection().dialect.name != "postgresql":
        clear_scheduler_info(session, messages)
        set_scheduler_info(session, messages)
        return
    current: dict[int, str] = {job_id: info for job_id, info in session.execute(_WAITING_MESSAGES)}
    changes = {job_id: "" for job_id in current if job_id not in messages}
    changes.update((job_id, message) for job_id, message in messages.items() if current.get(job_id) != message)
    if not changes:
        return
    index: dict[str, int] = {}
    ks = [index.setdefault(message, len(index) + 1) for message in changes.values()]  # SQL arrays count from 1
    session.execute(_SET_MESSAGES, {"texts": list(index), "ids": list(changes), "ks": ks})


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
