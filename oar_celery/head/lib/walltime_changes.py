"""Walltime change requests (``oarwalltime``), as OAR3 handles them: asked by users, granted by the scheduler.

A request records how much walltime a running job wants (``pending``, in
seconds, negative to give some back) in ``walltime_change``. At the start of
each full round the scheduler grants what the Gantt allows: the job's
resources must stay free of accepted reservations and other running jobs
(and, unless the request may delay the next jobs, of the jobs the last round
predicted there), security time included. What is granted lengthens the
job's moldable walltime, which Sarko reads, and is sent to the job's nodes,
whose backstop follows it; the rest stays pending for the next rounds.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import (
    GanttJobPrediction,
    GanttJobResource,
    Job,
    MoldableJobDescription,
    WalltimeChange,
)
from oar_celery.head.lib import sender
from oar_celery.head.lib.hosts import job_hosts
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.names import Task
from oar_celery.protocol.states import JobState
from oar_celery.scheduler import types as sched
from oar_celery.scheduler.walltime import format_walltime

logger = logging.getLogger(__name__)


def per_queue(text: str, queue: str, walltime: int | None = None) -> Any:
    """OAR3's ``get_conf``: a value, or ``{queue: value, '_': default}``; a fraction <= 1 of ``walltime``."""
    try:
        value = ast.literal_eval(text) if text.strip() else ""
    except (ValueError, SyntaxError):
        value = text
    if isinstance(value, dict):
        value = value.get(queue, value.get("_", ""))
    if walltime is not None and isinstance(value, float) and value <= 1.0:
        return int(walltime * value)
    return value


def signed(seconds: int) -> str:
    return ("-" if seconds < 0 else "+") + format_walltime(abs(seconds))


@dataclass
class Pending:
    job_id: int
    user: str
    moldable_id: int
    walltime: int
    pending: int
    delay_next_jobs: bool
    granted: int


_PENDING = (
    select(
        WalltimeChange.job_id, Job.job_user, Job.assigned_moldable_job, MoldableJobDescription.moldable_walltime,
        WalltimeChange.pending, WalltimeChange.delay_next_jobs, WalltimeChange.granted,
    )
    .join(Job, Job.job_id == WalltimeChange.job_id)
    .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .where(WalltimeChange.pending != 0, Job.state == JobState.RUNNING)
)


def grant_pending(
    session: Session, config: Settings, at: int, placed: Sequence[sched.Allocation]
) -> list[int]:
    """Grant what the Gantt allows of every pending request; the running allocations follow. The ids changed."""
    requests = [Pending(*row[:5], row[5] == "YES", row[6]) for row in session.execute(_PENDING)]
    if not requests:
        return []
    by_id = {allocation.job_id: allocation for allocation in placed}
    predicted = _predicted(session) if any(not r.delay_next_jobs for r in requests) else []
    changed: list[int] = []
    for request in requests:
        allocation = by_id.get(request.job_id)
        if allocation is None:
            continue
        fit = _fit(request, allocation, placed, predicted, at, config.security_time)
        if fit == 0:
            continue
        _apply(session, request, allocation, fit)
        changed.append(request.job_id)
    return changed


def _fit(
    request: Pending, allocation: sched.Allocation, placed: Sequence[sched.Allocation],
    predicted: list[tuple[int, set[int]]], at: int, security_time: int,
) -> int:
    """Seconds to grant now: all of a decrease (down to now), of an increase what keeps the resources free."""
    end = allocation.stop
    if request.pending < 0:
        return max(request.pending, min(0, at - end))
    mine = set(allocation.resource_ids)
    limit = end + request.pending
    blockers = [(a.start, set(a.resource_ids)) for a in placed if a.job_id != allocation.job_id]
    blockers += [] if request.delay_next_jobs else predicted
    for start, resources in blockers:
        if start >= end and not mine.isdisjoint(resources):
            limit = min(limit, start - security_time)
    return max(0, limit - end)


def _predicted(session: Session) -> list[tuple[int, set[int]]]:
    """The last round's predictions for waiting jobs: start and resources."""
    rows = session.execute(
        select(GanttJobPrediction.start_time, GanttJobResource.moldable_job_id, GanttJobResource.resource_id)
        .join(GanttJobResource, GanttJobResource.moldable_job_id == GanttJobPrediction.moldable_job_id)
    )
    found: dict[int, tuple[int, set[int]]] = {}
    for start, moldable_id, resource_id in rows:
        found.setdefault(moldable_id, (int(start), set()))[1].add(resource_id)
    return list(found.values())


def _apply(session: Session, request: Pending, allocation: sched.Allocation, fit: int) -> None:
    walltime = request.walltime + fit
    left = request.pending - fit
    session.execute(update(MoldableJobDescription).where(MoldableJobDescription.moldable_id == request.moldable_id)
                    .values(moldable_walltime=walltime))
    session.execute(
        update(WalltimeChange).where(WalltimeChange.job_id == request.job_id).values(
            pending=left, granted=request.granted + fit,
            granted_with_delay_next_jobs=WalltimeChange.granted_with_delay_next_jobs
            + (fit if request.delay_next_jobs and fit > 0 else 0),
            delay_next_jobs="NO" if left == 0 else WalltimeChange.delay_next_jobs,
        )
    )
    message = (f"walltime changed: {format_walltime(walltime)} (granted: {signed(fit)}/pending: {signed(left)}"
               f"{'/delay next jobs' if request.delay_next_jobs else ''})")
    session.execute(update(Job).where(Job.job_id == request.job_id).values(message=message))
    add_event(session, "WALLTIME_CHANGE", request.job_id, message)
    allocation.walltime += fit
    hosts = job_hosts(session, [request.job_id]).get(request.job_id)
    if hosts:  # the job's supervisor runs on its first node, where the launch went
        sender.after_commit(session, [sender.to_node(hosts[0], Task.NODE_WALLTIME, job_id=request.job_id,
                                                     walltime=walltime)])
    logger.info("job %s: %s", request.job_id, message)
