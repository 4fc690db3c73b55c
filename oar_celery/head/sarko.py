"""Sarko: keeps watch over jobs and resources, fired by beat through Almighty (``Villains``).

The seed's four duties:

1. frag states: ``TIMER_ARMED`` becomes ``FRAGGED`` once the job has ended,
   ``LEON`` again (the kill is sent again) after ``OAR_LEON_SOFT_WALLTIME``,
   and ``LEON_EXTERMINATE`` after ``OAR_LEON_WALLTIME``;
2. running jobs: a job past its walltime (plus the time it spent suspended) is
   fragged with a ``WALLTIME`` event, and a job that asked for a checkpoint
   gets its signal once, ``checkpoint`` seconds before (the node does not
   send it too: the job would trap it twice); a job left ``Resuming`` gets
   its resume again;
3. resources whose ``expiry_date`` has passed become ``Suspected``;
4. ``Suspected`` resources older than ``OAR_DEAD_SWITCH_TIME`` become ``Dead``.

Every resource change is requested through ``next_state`` and followed by a
``ChState`` message, so that NodeChangeState applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from oar_celery.db.models import FINAL_STATES, EventLog, FragJob, Job, MoldableJobDescription, Resource
from oar_celery.db.session import session_scope
from oar_celery.head.lib import sender
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.hosts import job_hosts
from oar_celery.head.lib.jobs import request_frag
from oar_celery.head.lib.suspension import resend_resumes
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.bus import notify
from oar_celery.protocol.names import Task
from oar_celery.protocol.states import FragState, JobState, ResourceState

logger = logging.getLogger(__name__)


def run_sarko(context: Context) -> None:
    messages: list[str] = []
    with session_scope() as session:
        if watch_frags(context, session):
            messages.append("Qdel")
        if watch_walltimes(context, session):
            messages.append("Qdel")
        if watch_resources(context, session):
            messages.append("ChState")
    notify(messages)


def watch_frags(context: Context, session: Session) -> bool:
    """Move armed timers on; whether Leon has work again."""
    config = context.settings
    at = context.now()
    rows = session.execute(
        select(FragJob.frag_id_job, FragJob.frag_date, Job.state)
        .join(Job, Job.job_id == FragJob.frag_id_job)
        .where(FragJob.frag_state == FragState.TIMER_ARMED)
    ).all()
    leon_work = False
    for job_id, frag_date, state in rows:
        if state in FINAL_STATES:
            new = FragState.FRAGGED
        elif at - frag_date >= config.leon_walltime:
            new = FragState.LEON_EXTERMINATE
        elif at - frag_date >= config.leon_soft_walltime:
            new = FragState.LEON
        else:
            continue
        session.execute(update(FragJob).where(FragJob.frag_id_job == job_id).values(frag_state=new))
        leon_work = leon_work or new != FragState.FRAGGED
        logger.info("frag of job %s: TIMER_ARMED -> %s", job_id, new)
    return leon_work


def watch_walltimes(context: Context, session: Session) -> bool:
    """Frag jobs past their walltime; send checkpoint signals once. Whether any job was fragged."""
    at = context.now()
    rows = session.execute(
        select(
            Job.job_id, Job.start_time, Job.suspended_time, Job.checkpoint, Job.checkpoint_signal,
            MoldableJobDescription.moldable_walltime,
        )
        .join(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
        .outerjoin(FragJob, FragJob.frag_id_job == Job.job_id)
        .where(Job.state == JobState.RUNNING, FragJob.frag_id_job.is_(None))
    ).all()
    fragged = False
    for job_id, start, suspended, checkpoint, signum, walltime in rows:
        end = start + walltime + suspended
        if at >= end:
            request_frag(session, job_id, "oar")
            add_event(session, "WALLTIME", job_id, f"job {job_id} reached its walltime of {walltime} s")
            fragged = True
        elif checkpoint and at >= end - checkpoint and not _checkpointed(session, job_id, end - checkpoint):
            checkpoint_job(session, job_id, signum, checkpoint)
    resend_resumes(session)
    return fragged


def checkpoint_job(session: Session, job_id: int, signum: int, checkpoint: int) -> None:
    """Send the job's checkpoint signal to its nodes, recorded by a ``CHECKPOINT`` event."""
    hosts = job_hosts(session, [job_id]).get(job_id, [])
    signals = [sender.to_node(host, Task.NODE_SIGNAL, job_id=job_id, signum=signum) for host in hosts]
    sender.after_commit(session, signals)
    add_event(session, "CHECKPOINT", job_id, f"checkpoint signal {signum} sent {checkpoint} s before the walltime")


def _checkpointed(session: Session, job_id: int, due: float) -> bool:
    """Whether a checkpoint was sent since it became due: the event is what makes it happen once.

    A ``CHECKPOINT`` from an earlier ``oardel -c`` does not count, one sent in
    the window (by Sarko or by the user) does.
    """
    return session.scalar(
        select(EventLog.event_id)
        .where(EventLog.job_id == job_id, EventLog.type == "CHECKPOINT", EventLog.date >= due - 1)
        .limit(1)
    ) is not None


def watch_resources(context: Context, session: Session) -> bool:
    """Suspect expired resources and kill off old suspected ones; whether any change was asked."""
    config = context.settings
    at = context.now()
    expired = session.execute(
        update(Resource)
        .where(Resource.state == ResourceState.ALIVE, Resource.next_state == "UnChanged",
               and_(Resource.expiry_date > 0, Resource.expiry_date < at))
        .values(next_state=ResourceState.SUSPECTED)
        .returning(Resource.resource_id)
    ).all()
    dead: Sequence[Any] = []
    if config.dead_switch_time > 0:
        dead = session.execute(
            update(Resource)
            .where(Resource.state == ResourceState.SUSPECTED, Resource.next_state == "UnChanged",
                   Resource.state_since < at - config.dead_switch_time)
            .values(next_state=ResourceState.DEAD)
            .returning(Resource.resource_id)
        ).all()
    for (resource_id,) in expired:
        logger.warning("resource %s expired: Suspected", resource_id)
    for (resource_id,) in dead:
        logger.warning("resource %s suspected for too long: Dead", resource_id)
    return bool(expired or dead)
