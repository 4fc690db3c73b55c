"""``oar.almighty.submit``: admission of a new job on the head, then a ``Qsub``.

``oar.almighty.submit_many(requests)`` takes a list of requests and answers
``{"results": [...]}``, one ``submit`` answer per request: the client API's
fast path, one message and one transaction for a whole batch.

Not acknowledged late: a client that got no answer submits again itself,
with the same ``submission_id``, and is answered with the jobs already made.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from oar_celery import admission
from oar_celery.almighty import notify
from oar_celery.celery_app import app
from oar_celery.config import settings
from oar_celery.db import statistics
from oar_celery.db.models import Job, JobSubmission, JobType
from oar_celery.db.session import now, session_scope
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.walltime import format_walltime
from oar_celery.tasks.authenticated import AuthenticatedTask
from oar_celery.transitions import add_event

logger = logging.getLogger(__name__)


def submit_request(request: dict[str, Any]) -> list[int]:
    """Check and insert one request; the new job ids. Raises RequestError."""
    answer = submit_requests([request])[0]
    if "error" in answer:
        raise RequestError(answer["error"])
    return answer["job_ids"]


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        return submit_requests([request])[0]
    except SQLAlchemyError as error:
        logger.exception("submission failed")
        return {"error": f"the database refused the job: {type(error).__name__}"}


@app.task(name="oar.almighty.submit", base=AuthenticatedTask)
def submit(request: dict[str, Any]) -> dict[str, Any]:
    answer = _answer(request)
    if "job_ids" in answer:
        notify(["Qsub"])
    return answer


def _check_one(session: Any, request: Any, cache: dict[str, Any]) -> Any:
    """Admission of one request of a batch: a Submission, or the one-line refusal.

    Identical requests (a script submitting the same job many times) are
    checked once: the checks read the same queues and resources anyway.
    """
    if not isinstance(request, dict):
        return f"bad request: expected a dict, got {type(request).__name__}"
    key = json.dumps({k: v for k, v in request.items() if k != "submission_id"}, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = admission.check(session, request, settings())
        except RequestError as error:
            cache[key] = str(error)
        except (ValueError, TypeError) as error:
            cache[key] = f"bad request: {error}"
    return cache[key]


def _submission_id(request: Any) -> str | None:
    value = request.get("submission_id") if isinstance(request, dict) else None
    return str(value)[:64] if value else None


def known_submissions(session: Any, ids: list[str]) -> dict[str, list[int]]:
    """The job ids already given to these client submission ids (a retried submission)."""
    if not ids:
        return {}
    rows = session.execute(
        select(JobSubmission.submission_id, JobSubmission.job_ids).where(JobSubmission.submission_id.in_(ids))
    )
    return {submission_id: json.loads(job_ids) for submission_id, job_ids in rows}


def submit_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check every request, insert the accepted ones in one transaction; one answer per request.

    A request carrying a ``submission_id`` already seen is answered with the
    jobs it created then: a client that got no answer (the head died, the
    broker restarted) submits again with the same id and no job is doubled.
    Two copies racing end in a key violation; the second pass answers both.
    """
    try:
        return _submit_once(requests)
    except IntegrityError:
        return _submit_once(requests)


def _submit_once(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at = now()
    with session_scope() as session:
        known = known_submissions(session, [sid for r in requests if (sid := _submission_id(r))])
        cache: dict[str, Any] = {}
        checked = [
            known[sid] if (sid := _submission_id(request)) in known else _check_one(session, request, cache)
            for request in requests
        ]
        fresh = [(r, c) for r, c in zip(requests, checked, strict=True) if isinstance(c, admission.Submission)]
        inserted = admission.insert_many(session, [c for _, c in fresh], at=at)
        session.add_all(
            JobSubmission(submission_id=sid, job_ids=json.dumps(ids), submitted_at=at)
            for (request, _), ids in zip(fresh, inserted, strict=True)
            if (sid := _submission_id(request))
        )
    statistics.refresh_after_burst(sum(len(ids) for ids in inserted))
    new_ids = iter(inserted)
    answers = [
        {"job_ids": outcome}
        if isinstance(outcome, list)
        else {"job_ids": next(new_ids)}
        if isinstance(outcome, admission.Submission)
        else {"error": outcome}
        for outcome in checked
    ]
    logger.info("%d submission(s): %d inserted, %d answered again", len(requests), len(fresh),
                sum(isinstance(c, list) for c in checked))
    return answers


@app.task(name="oar.almighty.submit_many", base=AuthenticatedTask)
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


def resubmit_if_idempotent(job_id: int, *, exit_99: bool = False) -> int | None:
    """Submit again a finished ``idempotent`` job, linked by ``resubmit_job_id``; the new id.

    A job killed for a normal job (besteffort) or on a failed node only needs
    the ``idempotent`` type. One that asked by exiting 99 (``exit_99``) also
    needs OAR3's NodeChangeState conditions: not a reservation, not killed
    (no ``FRAG_JOB_REQUEST``), ran more than 60 s. Without the 60 s rule a
    job that exits 99 at once would be resubmitted forever.
    """
    with session_scope() as session:
        job = session.get(Job, job_id)
        types = set(session.scalars(select(JobType.type).where(JobType.job_id == job_id)))
        if job is None or "idempotent" not in types or (exit_99 and not _may_resubmit(session, job)):
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


#: OAR3 resubmits an idempotent job only if it ran longer than this (seconds).
IDEMPOTENT_MIN_RUN = 60


def _may_resubmit(session: Any, job: Job) -> bool:
    from oar_celery.db.models import EventLog

    killed = session.scalar(
        select(EventLog.event_id).where(EventLog.job_id == job.job_id, EventLog.type == "FRAG_JOB_REQUEST").limit(1)
    )
    ran = (job.stop_time or 0) - (job.start_time or 0)
    return job.reservation == "None" and killed is None and ran > IDEMPOTENT_MIN_RUN


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
        resources.append("+".join(parts) + f",walltime={format_walltime(moldable.moldable_walltime)}")
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

