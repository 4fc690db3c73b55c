"""``oar.almighty.submit``: admission of a new job on the head, then a ``Qsub``.

``oar.almighty.submit_many(requests)`` takes a list of requests and answers
``{"results": [...]}``, one ``submit`` answer per request: the client API's
fast path, one message and one transaction for a whole batch.

Not acknowledged late: a submission that is redelivered after the head died
could insert the job twice, so a client that got no answer is told so and
submits again itself.
"""

from __future__ import annotations

import json
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


def _check_one(session: Any, request: Any, cache: dict[str, Any]) -> Any:
    """Admission of one request of a batch: a Submission, or the one-line refusal.

    Identical requests (a script submitting the same job many times) are
    checked once: the checks read the same queues and resources anyway.
    """
    if not isinstance(request, dict):
        return f"bad request: expected a dict, got {type(request).__name__}"
    key = json.dumps(request, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = admission.check(session, request, settings())
        except RequestError as error:
            cache[key] = str(error)
        except (ValueError, TypeError) as error:
            cache[key] = f"bad request: {error}"
    return cache[key]


def submit_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check every request, insert the accepted ones in one transaction; one answer per request."""
    answers: list[dict[str, Any]] = []
    with session_scope() as session:
        cache: dict[str, Any] = {}
        checked = [_check_one(session, request, cache) for request in requests]
        accepted = [c for c in checked if isinstance(c, admission.Submission)]
        inserted = iter(admission.insert_many(session, accepted, at=now()))
    for outcome in checked:
        answers.append({"job_ids": next(inserted)} if isinstance(outcome, admission.Submission) else {"error": outcome})
    logger.info("batch of %d submission(s), %d accepted", len(requests), len(accepted))
    return answers


@app.task(name="oar.almighty.submit_many")
def submit_many(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Many submissions in one message and one transaction: ``{"results": [answer per request]}``.

    Each answer is what ``oar.almighty.submit`` would have answered for that
    request alone; a refused request writes nothing and does not stop the others.
    One ``Qsub`` for the whole batch.
    """
    if not isinstance(requests, list):
        return {"error": "bad request: expected a list of requests"}
    try:
        results = submit_requests(requests)
    except SQLAlchemyError as error:
        logger.exception("batch submission failed")
        return {"error": f"the database refused the jobs: {type(error).__name__}"}
    if any("job_ids" in answer for answer in results):
        notify(["Qsub"])
    return {"results": results}


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
