"""oardel's admin options, as OAR3's oardel: ``-b`` (besteffort) and ``--force-terminate-finishing-job``.

Both are for the admin user (or root) only, as in OAR3 (exit status 8
otherwise, decided by the command from the refusal). Each job is handled in
its own transaction with :func:`control.for_each_job`, so one refused job
does not stop the others.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from oar_celery.celery_app import app
from oar_celery.config import settings
from oar_celery.db.models import Job, JobType
from oar_celery.tasks.authenticated import AuthenticatedTask
from oar_celery.tasks.control import Refused, for_each_job
from oar_celery.transitions import add_event, finish

ADMIN_ONLY = "You must be oar or root to use the {} option"


def _admin_only(user: str, option: str, job_ids: list[int]) -> dict[str, Any] | None:
    if settings().is_admin(user):
        return None
    line = ADMIN_ONLY.format(option)
    return {"results": {str(job_id): line for job_id in job_ids}, "failed": list(job_ids)}


@app.task(name="oar.control.besteffort", base=AuthenticatedTask)
def toggle_besteffort(user: str, job_ids: list[int]) -> dict[str, Any]:
    """``oardel -b``: a running job becomes besteffort, or stops being one (OAR3)."""
    refused = _admin_only(user, "--besteffort", job_ids)
    if refused:
        return refused

    def toggle(session: Session, job: Job) -> str:
        if job.state != "Running":
            raise Refused(f"The job {job.job_id} is not in the Running state.")
        present = session.scalar(
            select(JobType.job_type_id).where(JobType.job_id == job.job_id, JobType.type == "besteffort")
        )
        if present:
            session.execute(delete(JobType).where(JobType.job_id == job.job_id, JobType.type == "besteffort"))
            add_event(session, "DELETE_BESTEFFORT_JOB_TYPE", job.job_id, f"User {user} removed the besteffort type.")
            return f"Remove besteffort type for the job {job.job_id}."
        session.add(JobType(job_id=job.job_id, type="besteffort", types_index="CURRENT"))
        add_event(session, "ADD_BESTEFFORT_JOB_TYPE", job.job_id, f"User {user} added the besteffort type.")
        return f"Add besteffort type for the job {job.job_id}."

    return for_each_job(user, job_ids, toggle, ["ChState"])


@app.task(name="oar.control.force_terminate", base=AuthenticatedTask)
def force_terminate(user: str, job_ids: list[int]) -> dict[str, Any]:
    """``oardel --force-terminate-finishing-job``: a job stuck in ``Finishing`` becomes ``Terminated``."""
    refused = _admin_only(user, "--force-terminate-finishing-job", job_ids)
    if refused:
        return refused

    def terminate(session: Session, job: Job) -> str:
        if job.state != "Finishing":
            raise Refused(f"The job {job.job_id} is not in the Finishing state.")
        comment = f"Force to Terminate the job {job.job_id} which is in Finishing state"
        finish(session, [job.job_id], "Terminated", expected=("Finishing",), message=comment)
        add_event(session, "FORCE_TERMINATE_FINISHING_JOB", job.job_id, comment)
        return f"Force the termination of the job = {job.job_id} ...REGISTERED."

    return for_each_job(user, job_ids, terminate, ["ChState"])
