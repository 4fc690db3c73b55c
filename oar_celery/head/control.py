"""What users ask of their jobs and admins of their nodes: oardel, oarhold, oarresume, oarnodesetting.

Each task checks rights on the head (owner, root or the admin user), changes
the database with conditional updates, answers one line per job, and tells
Almighty. A request that fails for one job does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import FINAL_STATES, Job, JobType
from oar_celery.db.session import session_scope
from oar_celery.head.lib import sender
from oar_celery.head.lib.errors import Refused
from oar_celery.head.lib.jobs import request_frag
from oar_celery.head.lib.transitions import add_event, finish, set_state
from oar_celery.protocol.bus import notify
from oar_celery.protocol.names import Task
from oar_celery.protocol.states import JobState

logger = logging.getLogger(__name__)


def owned_job(session: Session, job_id: int, user: str) -> Job:
    """The job, if ``user`` may act on it."""
    job = session.get(Job, job_id)
    if job is None:
        raise Refused(f"job {job_id} does not exist")
    if job.job_user != user and not settings().is_admin(user):
        raise Refused(f"job {job_id} belongs to {job.job_user}, not to {user}")
    return job


def for_each_job(
    user: str, job_ids: list[int], action: Callable[[Session, Job], str], messages: list[str]
) -> dict[str, Any]:
    """Run ``action`` on each job in its own transaction; the answers and the failures."""
    results: dict[str, str] = {}
    failed: list[int] = []
    for job_id in job_ids:
        try:
            with session_scope() as session:
                results[str(job_id)] = action(session, owned_job(session, int(job_id), user))
        except Refused as refusal:
            results[str(job_id)] = str(refusal)
            failed.append(job_id)
    if len(failed) < len(job_ids):
        notify(messages)
    return {"results": results, "failed": failed}


def delete(
    user: str, job_ids: list[int], signal: int | None = None, checkpoint: bool = False, array_id: int | None = None
) -> dict[str, Any]:

    if array_id is not None:
        job_ids = _array_jobs(array_id) + list(job_ids)
        if not job_ids:
            return {"error": f"array {array_id} does not exist"}

    def frag(session: Session, job: Job) -> str:
        if signal is not None or checkpoint:
            return send_signal(session, job, signal, checkpoint)
        if job.state in FINAL_STATES:
            raise Refused(f"job {job.job_id} is already finished ({job.state})")
        request_frag(session, job.job_id, user)
        return f"Deleting the job = {job.job_id} ...REGISTERED."

    return for_each_job(user, job_ids, frag, [] if signal is not None or checkpoint else ["Qdel"])


def _array_jobs(array_id: int) -> list[int]:
    from sqlalchemy import select

    with session_scope() as session:
        return list(session.scalars(select(Job.job_id).where(Job.array_id == array_id).order_by(Job.job_id)))


def send_signal(session: Session, job: Job, signal: int | None, checkpoint: bool) -> str:
    """``oardel -c`` (the job's checkpoint signal) or ``oardel -s SIG``: signal a running job."""
    from oar_celery.head.lib.hosts import job_hosts

    if job.state != JobState.RUNNING:
        raise Refused(f"job {job.job_id} is not running ({job.state})")
    signum = job.checkpoint_signal if checkpoint or signal is None else signal
    hosts = job_hosts(session, [job.job_id]).get(job.job_id, [])
    signals = [sender.to_node(host, Task.NODE_SIGNAL, job_id=job.job_id, signum=signum) for host in hosts]
    sender.after_commit(session, signals)
    kind = "CHECKPOINT" if checkpoint else "SIGNAL"
    add_event(session, kind, job.job_id, f"signal {signum} sent to the job")
    return f"Signal {signum} sent to the job {job.job_id}."


def hold(user: str, job_ids: list[int], running: bool = False) -> dict[str, Any]:
    def hold_one(session: Session, job: Job) -> str:
        if running:
            from oar_celery.head.lib.suspension import suspend_job

            return suspend_job(session, job, user)
        if not set_state(session, [job.job_id], JobState.HOLD, expected=(JobState.WAITING,)):
            raise Refused(f"job {job.job_id} is not waiting ({job.state}): use -r to hold a running job")
        add_event(session, "HOLD_WAITING_JOB", job.job_id, f"user {user} held the job")
        return f"[{job.job_id}] Hold request was sent to the OAR server."

    return for_each_job(user, job_ids, hold_one, ["Qhold"])


def resume(user: str, job_ids: list[int]) -> dict[str, Any]:
    def resume_one(session: Session, job: Job) -> str:
        if job.state == JobState.SUSPENDED:
            from oar_celery.head.lib.suspension import resume_job

            return resume_job(session, job, user)
        if not set_state(session, [job.job_id], JobState.WAITING, expected=(JobState.HOLD,)):
            raise Refused(f"job {job.job_id} is not held ({job.state})")
        add_event(session, "RESUME_JOB", job.job_id, f"user {user} resumed the job")
        return f"[{job.job_id}] Resume request was sent to the OAR server."

    return for_each_job(user, job_ids, resume_one, ["Qresume"])


#: oardel's admin options, as OAR3's oardel: ``-b`` (besteffort) and ``--force-terminate-finishing-job``.
#: Both are for the admin user (or root) only, as in OAR3 (exit status 8 otherwise, decided by the command).
ADMIN_ONLY = "You must be oar or root to use the {} option"


def _admin_only(user: str, option: str, job_ids: list[int]) -> dict[str, Any] | None:
    if settings().is_admin(user):
        return None
    line = ADMIN_ONLY.format(option)
    return {"results": {str(job_id): line for job_id in job_ids}, "failed": list(job_ids)}


def toggle_besteffort(user: str, job_ids: list[int]) -> dict[str, Any]:
    """``oardel -b``: a running job becomes besteffort, or stops being one (OAR3)."""
    refused = _admin_only(user, "--besteffort", job_ids)
    if refused:
        return refused

    def toggle(session: Session, job: Job) -> str:
        if job.state != JobState.RUNNING:
            raise Refused(f"The job {job.job_id} is not in the Running state.")
        present = session.scalar(
            select(JobType.job_type_id).where(JobType.job_id == job.job_id, JobType.type == "besteffort")
        )
        if present:
            session.execute(sql_delete(JobType).where(JobType.job_id == job.job_id, JobType.type == "besteffort"))
            add_event(session, "DELETE_BESTEFFORT_JOB_TYPE", job.job_id, f"User {user} removed the besteffort type.")
            return f"Remove besteffort type for the job {job.job_id}."
        session.add(JobType(job_id=job.job_id, type="besteffort", types_index="CURRENT"))
        add_event(session, "ADD_BESTEFFORT_JOB_TYPE", job.job_id, f"User {user} added the besteffort type.")
        return f"Add besteffort type for the job {job.job_id}."

    return for_each_job(user, job_ids, toggle, ["ChState"])


def force_terminate(user: str, job_ids: list[int]) -> dict[str, Any]:
    """``oardel --force-terminate-finishing-job``: a job stuck in ``Finishing`` becomes ``Terminated``."""
    refused = _admin_only(user, "--force-terminate-finishing-job", job_ids)
    if refused:
        return refused

    def terminate(session: Session, job: Job) -> str:
        if job.state != JobState.FINISHING:
            raise Refused(f"The job {job.job_id} is not in the Finishing state.")
        comment = f"Force to Terminate the job {job.job_id} which is in Finishing state"
        finish(session, [job.job_id], JobState.TERMINATED, expected=(JobState.FINISHING,), message=comment)
        add_event(session, "FORCE_TERMINATE_FINISHING_JOB", job.job_id, comment)
        return f"Force the termination of the job = {job.job_id} ...REGISTERED."

    return for_each_job(user, job_ids, terminate, ["ChState"])


def job_key(user: str, job_id: int) -> dict[str, Any]:
    """The key of a job for its owner (or an admin): what ``oarsub -I``, ``-C`` and ``oarsh`` connect with.

    The key opens shells in that job only; the answer of a running job also
    carries its sealed ticket (for its other nodes) and where each node's
    job-shell service listens. Refusals are logged: someone asked for a key
    that is not theirs, or of a job that has ended.
    """
    from oar_celery.head.lib.jobshell import job_key_answer

    try:
        with session_scope() as session:
            return job_key_answer(session, owned_job(session, int(job_id), user), settings())
    except Refused as refusal:
        logger.warning("job key of job %s refused to %s: %s", job_id, user, refusal)
        return {"error": str(refusal)}
