"""``oar.almighty.submit``: admission of a new job on the head, then a ``Qsub``.

Not acknowledged late: a submission that is redelivered after the head died
could insert the job twice, so a client that got no answer is told so and
submits again itself.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from oar_celery import admission
from oar_celery.almighty import notify
from oar_celery.celery_app import app
from oar_celery.config import settings
from oar_celery.db.models import Job, JobType
from oar_celery.db.session import now, session_scope
from oar_celery.scheduler.errors import RequestError
from oar_celery.transitions import add_event

logger = logging.getLogger(__name__)


def submit_request(request: dict[str, Any]) -> list[int]:
    """Check and insert one request; the new job ids. Raises RequestError."""
    with session_scope() as session:
        checked = admission.check(session, request, settings())
        job_ids = admission.insert(session, checked, at=now())
    logger.info("user %s submitted job(s) %s", checked.user, job_ids)
    return job_ids


@app.task(name="oar.almighty.submit")
def submit(request: dict[str, Any]) -> dict[str, Any]:
    try:
        job_ids = submit_request(request)
    except RequestError as error:
        return {"error": str(error)}
    except (ValueError, TypeError) as error:
        return {"error": f"bad request: {error}"}
    except SQLAlchemyError as error:
        logger.exception("submission failed")
        return {"error": f"the database refused the job: {type(error).__name__}"}
    notify(["Qsub"])
    return {"job_ids": job_ids}


def resubmit_if_idempotent(job_id: int) -> int | None:
    """Submit again a finished ``idempotent`` job, linked by ``resubmit_job_id``; the new id."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        types = set(session.scalars(select(JobType.type).where(JobType.job_id == job_id)))
        if job is None or "idempotent" not in types:
            return None
        already = session.scalar(select(Job.job_id).where(Job.resubmit_job_id == job_id))
        if already:
            return already
        request = request_of(session, job)
    new_ids = submit_request(request)
    with session_scope() as session:
        add_event(session, "RESUBMIT_JOB_AUTOMATICALLY", job_id, f"job resubmitted as job {new_ids[0]}")
    notify(["Qsub"])
    return new_ids[0]


def request_of(session: Any, job: Job) -> dict[str, Any]:
    """A submission request that reproduces an existing job."""
    from oar_celery.db.models import JobDependency, JobResourceDescription, JobResourceGroup, MoldableJobDescription

    resources = []
    moldables = session.scalars(
        select(MoldableJobDescription).where(MoldableJobDescription.moldable_job_id == job.job_id)
    ).all()
    for moldable in moldables:
        groups = session.scalars(
            select(JobResourceGroup).where(JobResourceGroup.res_group_moldable_id == moldable.moldable_id)
        ).all()
        parts = []
        for group in groups:
            levels = session.scalars(
                select(JobResourceDescription)
                .where(JobResourceDescription.res_job_group_id == group.res_group_id)
                .order_by(JobResourceDescription.res_job_order)
            ).all()
            text = "".join(f"/{lv.res_job_resource_type}={_count(lv.res_job_value)}" for lv in levels)
            parts.append(f"{{{group.res_group_property}}}{text}" if group.res_group_property else text)
        resources.append("+".join(parts) + f",walltime={_walltime(moldable.moldable_walltime)}")
    return {
        "user": job.job_user,
        "command": job.command,
        "resources": resources,
        "name": job.job_name,
        "directory": job.launching_directory,
        "stdout": job.stdout_file,
        "stderr": job.stderr_file,
        "queue": job.queue_name,
        "types": list(session.scalars(select(JobType.type).where(JobType.job_id == job.job_id))),
        "properties": job.properties,
        "dependencies": list(
            session.scalars(select(JobDependency.job_id_required).where(JobDependency.job_id == job.job_id))
        ),
        "notify": job.notify,
        "checkpoint": job.checkpoint,
        "signal": job.checkpoint_signal,
        "project": job.project,
        "initial_request": job.initial_request,
        "resubmit_job_id": job.job_id,
    }


def _count(value: int) -> str:
    return {-1: "ALL", -2: "BEST"}.get(value, str(value))


def _walltime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
