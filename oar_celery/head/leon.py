"""Leon: carries out frag requests (``oardel``) recorded in ``frag_jobs``.

A job that has not started goes straight to ``Error``. A started one gets a
kill task on each of its nodes and its frag state goes ``TIMER_ARMED``; Sarko
then watches the timer. A job whose nodes never answered is exterminated:
``Error``, resources freed, nodes ``Suspected``.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.db.models import FINAL_STATES, STARTED_STATES, FragJob, Job, Resource
from oar_celery.db.session import session_scope
from oar_celery.head.lib import sender
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.hosts import job_hosts, noop_jobs
from oar_celery.head.lib.transitions import add_event, finish
from oar_celery.protocol.bus import notify
from oar_celery.protocol.names import Task
from oar_celery.protocol.states import FragState, JobState, ResourceState

logger = logging.getLogger(__name__)

NOT_STARTED = (JobState.WAITING, JobState.HOLD, JobState.TO_LAUNCH, JobState.TO_ACK_RESERVATION, JobState.TO_ERROR)


def run_leon(context: Context) -> None:
    kills: list[tuple[int, list[str]]] = []
    freed = False
    with session_scope() as session:
        frags = session.execute(
            select(FragJob.frag_id_job, FragJob.frag_state, Job.state)
            .join(Job, Job.job_id == FragJob.frag_id_job)
            .where(FragJob.frag_state.in_((FragState.LEON, FragState.LEON_EXTERMINATE)))
        ).all()
        hosts = job_hosts(session, [job_id for job_id, _, _ in frags])
        noop = noop_jobs(session, [job_id for job_id, _, _ in frags])
        for job_id, frag_state, state in frags:
            if frag_state == FragState.LEON_EXTERMINATE:
                exterminate(session, job_id, hosts.get(job_id, []))
                freed = True
            elif state in FINAL_STATES:
                _set_frag(session, job_id, FragState.FRAGGED)
            elif state in NOT_STARTED:
                finish(session, [job_id], JobState.ERROR, expected=NOT_STARTED, message="job killed before it started")
                _set_frag(session, job_id, FragState.FRAGGED)
                freed = True
            elif state in STARTED_STATES and job_id in noop:
                finish(session, [job_id], JobState.TERMINATED, expected=STARTED_STATES, message="noop job ended")
                _set_frag(session, job_id, FragState.FRAGGED)
                freed = True
            elif state in STARTED_STATES:
                kills.append((job_id, hosts.get(job_id, [])))
                _set_frag(session, job_id, FragState.TIMER_ARMED)
    grace = context.settings.kill_grace
    sender.send(sender.to_node(host, Task.NODE_KILL, job_id=job_id, grace=grace) for job_id, on in kills for host in on)
    for job_id, job_hosts_ in kills:
        logger.info("kill of job %s sent to %s", job_id, ",".join(job_hosts_))
    if freed:
        notify(["Term", "ChState"])


def _set_frag(session: Session, job_id: int, state: str) -> None:
    session.execute(update(FragJob).where(FragJob.frag_id_job == job_id).values(frag_state=state))


def exterminate(session: Session, job_id: int, hosts: list[str]) -> None:
    """The job's nodes never confirmed the kill: end it and suspect them."""
    message = "job exterminated: its nodes did not answer the kill"
    finish(session, [job_id], JobState.ERROR, expected=STARTED_STATES, message=message)
    add_event(session, "EXTERMINATE_JOB", job_id, message, hosts=hosts, to_check=True)
    if hosts:
        session.execute(
            update(Resource)
            .where(Resource.network_address.in_(hosts), Resource.state == ResourceState.ALIVE)
            .values(next_state=ResourceState.SUSPECTED)
        )
    _set_frag(session, job_id, FragState.FRAGGED)


