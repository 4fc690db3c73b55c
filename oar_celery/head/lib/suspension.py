"""Suspending and resuming running jobs: ``oarhold -r`` and ``oarresume``.

``oarhold -r`` moves a ``Running`` job to ``Suspended`` (a conditional update,
so it races safely with the job's end report) and sends SIGSTOP to its process
group on every node. ``oarresume`` moves it to ``Resuming`` and sends SIGCONT;
the first node that has continued the job reports back and the job is
``Running`` again, its ``suspended_time`` grown by the time it was stopped, so
that Sarko (and the node's own backstop) push its walltime back by as much.

A job stays ``Resuming`` only until a node answers: Sarko sends the resume
again to jobs that stayed ``Resuming`` too long, so a lost message only delays
the job, and a job that ended meanwhile leaves ``Resuming`` through its end
report.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.db.models import Job, JobStateLog
from oar_celery.db.session import now, session_scope
from oar_celery.head.lib import sender
from oar_celery.head.lib.errors import Refused
from oar_celery.head.lib.hosts import job_hosts
from oar_celery.head.lib.transitions import add_event, set_state
from oar_celery.head.lib.trust import off_their_hosts, refuse_foreign
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.names import Task, resume_key
from oar_celery.protocol.signing import head_keyring
from oar_celery.protocol.states import JobState

logger = logging.getLogger(__name__)

#: Seconds a job may stay ``Resuming`` before Sarko sends the resume again.
RESUME_RESEND = 5.0


def send_to_nodes(session: Session, job_id: int, task: str) -> list[str]:
    """Send ``oar.node.suspend`` or ``oar.node.resume`` to each of the job's nodes; the hosts.

    The tasks leave once the state change is committed: a node that answers
    at once must find the job ``Resuming``, and a rolled back change sends nothing.
    """
    hosts = job_hosts(session, [job_id]).get(job_id, [])
    sender.after_commit(session, [sender.to_node(host, task, job_id=job_id) for host in hosts])
    return hosts


def suspend_job(session: Session, job: Job, user: str) -> str:
    """``oarhold -r``: stop a running job on all its nodes."""
    if not set_state(session, [job.job_id], JobState.SUSPENDED, expected=(JobState.RUNNING,), suspended="YES"):
        raise Refused(f"job {job.job_id} is not running ({job.state}): only a running job can be suspended")
    hosts = send_to_nodes(session, job.job_id, Task.NODE_SUSPEND)
    add_event(session, "HOLD_RUNNING_JOB", job.job_id, f"user {user} suspended the running job", hosts=hosts)
    _notify(job.job_id, job.notify, "SUSPENDED", "job suspended")
    return f"[{job.job_id}] The job is suspended (SIGSTOP sent to {','.join(hosts) or 'no node'})."


def resume_job(session: Session, job: Job, user: str) -> str:
    """``oarresume`` of a suspended job: continue it on all its nodes."""
    if not set_state(session, [job.job_id], JobState.RESUMING, expected=(JobState.SUSPENDED,)):
        raise Refused(f"job {job.job_id} is not suspended ({job.state})")
    hosts = send_to_nodes(session, job.job_id, Task.NODE_RESUME)
    add_event(session, "RESUME_JOB", job.job_id, f"user {user} resumed the suspended job", hosts=hosts)
    _notify(job.job_id, job.notify, "RESUMING", "job resuming")
    return f"[{job.job_id}] Resume request was sent to the OAR server."


def _notify(job_id: int, method: str | None, tag: str, comment: str) -> None:
    from oar_celery.head.lib import judas

    judas.notify_later(job_id, method, tag, comment)


def suspended_since(session: Session, job_id: int) -> float | None:
    """When the job's latest suspension began (its last ``Suspended`` state log)."""
    return session.scalar(
        select(JobStateLog.date_start)
        .where(JobStateLog.job_id == job_id, JobStateLog.job_state == JobState.SUSPENDED)
        .order_by(JobStateLog.date_start.desc())
        .limit(1)
    )


def job_resumed(job_id: int, host: str) -> None:
    """A node continued the job: ``Resuming`` → ``Running``, the stop added to ``suspended_time``.

    Several nodes answer for a multi-node job; the conditional update lets the
    first one count and makes the others no-ops.
    """
    at = now()
    with session_scope() as session:
        if head_keyring().enabled and off_their_hosts(session, [(int(job_id), host)]):
            refuse_foreign(broker_redis(), "job_resumed", [(int(job_id), host)])
            return
        since = suspended_since(session, job_id) or at
        moved = set_state(
            session, [job_id], JobState.RUNNING, expected=(JobState.RESUMING,), at=at,
            suspended="NO", suspended_time=Job.suspended_time + max(0.0, at - since),
        )
    if moved:
        logger.info("job %s resumed on %s after %.1f s suspended", job_id, host, at - since)


def resend_resumes(session: Session) -> int:
    """Send the resume again to jobs ``Resuming`` for too long (Sarko calls this); how many.

    A Redis key per job spaces the resends, so the job's state history stays true.
    """
    from oar_celery.protocol.bus import broker_redis

    stale = session.scalars(
        select(Job.job_id)
        .join(JobStateLog, JobStateLog.job_id == Job.job_id)
        .where(Job.state == JobState.RESUMING, JobStateLog.job_state == JobState.RESUMING, JobStateLog.date_stop == 0,
               JobStateLog.date_start < now() - RESUME_RESEND)
    ).all()
    client = broker_redis()
    sent = 0
    for job_id in stale:
        if client.set(resume_key(job_id), "1", nx=True, ex=int(RESUME_RESEND)):
            send_to_nodes(session, job_id, Task.NODE_RESUME)
            logger.warning("job %s still Resuming: resume sent again", job_id)
            sent += 1
    return sent
