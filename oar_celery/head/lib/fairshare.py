"""The karma of the waiting jobs, from the ``accounting`` table (OAR's fair-share, off unless configured).

One query per round: the accounted core-seconds of every window that
overlaps the fair-share window (``OAR_SCHEDULER_FAIRSHARING_WINDOW_SIZE``
seconds up to now), by queue, user, project and kind, summed per queue
priority as OAR3 sums them over the queues it schedules together. The
current window counts too: the accounting is filled as jobs end, so the
karma follows the usage of the day instead of waiting for it to close.
The formula and the order are the pure scheduler's (:mod:`oar_celery.scheduler.karma`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import Accounting, Job, Queue
from oar_celery.scheduler import karma
from oar_celery.scheduler import types as sched

_USAGE = (
    select(
        Queue.priority, Accounting.accounting_user, Accounting.accounting_project, Accounting.consumption_type,
        func.sum(Accounting.consumption),
    )
    .join(Queue, Queue.queue_name == Accounting.queue_name)
    .where(Accounting.window_stop >= bindparam("since"), Accounting.window_start <= bindparam("until"))
    .group_by(Queue.priority, Accounting.accounting_user, Accounting.accounting_project, Accounting.consumption_type)
)


@lru_cache(maxsize=4)
def policy_of(config: Settings) -> karma.KarmaPolicy:
    """The settings' fair-share policy, parsed once per settings."""
    return karma.KarmaPolicy(
        window=config.scheduler_fairsharing_window_size,
        project_targets=karma.parse_targets(config.scheduler_fairsharing_project_targets),
        user_targets=karma.parse_targets(config.scheduler_fairsharing_user_targets),
        coef_project=config.scheduler_fairsharing_coef_project,
        coef_user=config.scheduler_fairsharing_coef_user,
        coef_user_ask=config.scheduler_fairsharing_coef_user_ask,
    )


def usage_by_priority(session: Session, at: int, window: int) -> dict[int, karma.Usage]:
    """Accounted usage inside the fair-share window, per queue priority."""
    usage: dict[int, karma.Usage] = {}
    for priority, user, project, kind, seconds in session.execute(_USAGE, {"since": at - window, "until": at}):
        usage.setdefault(priority, karma.Usage()).add(user, project, kind, float(seconds))
    return usage


def apply_karma(session: Session, config: Settings, at: int, jobs: Sequence[sched.Job]) -> None:
    """Set each waiting job's karma when fair-sharing is on; leave 0 (FIFO within a priority) when off."""
    if not config.fairsharing_enabled or not jobs:
        return
    policy = policy_of(config)
    karma.set_karma(policy, usage_by_priority(session, at, policy.window), jobs)


def karma_of(session: Session, config: Settings, at: int) -> Callable[[int, str, str], float] | None:
    """The karma of a job by its queue priority, user and project (None when fair-sharing is off).

    The quick round orders the waiting jobs by it before it loads the first
    of them; the value is the one :func:`apply_karma` gives, from the same one
    query, computed once per priority, user and project.
    """
    if not config.fairsharing_enabled:
        return None
    policy = policy_of(config)
    usage = usage_by_priority(session, at, policy.window)
    empty = karma.Usage()
    memo: dict[tuple[int, str, str], float] = {}

    def of(priority: int, user: str, project: str) -> float:
        key = (priority, user, project)
        value = memo.get(key)
        if value is None:
            value = memo[key] = karma.karma(policy, usage.get(priority, empty), user, project)
        return value

    return of


def record_karma(session: Session, config: Settings, started: Sequence[int], jobs: Sequence[sched.Job]) -> None:
    """``last_karma`` of the jobs the round starts, for ``oarstat -f`` (OAR3's column)."""
    if not config.fairsharing_enabled or not started:
        return
    karma_of = {job.id: job.karma for job in jobs}
    values = {job_id: karma_of[job_id] for job_id in started if job_id in karma_of}
    if values:  # one statement for the round, not one per user and project
        session.execute(
            update(Job).where(Job.job_id.in_(list(values)))
            .values(last_karma=case(values, value=Job.job_id))
            .execution_options(synchronize_session=False)
        )
