"""Admission and insertion of submissions, in batches: what ``oarsub`` and a resubmission both go through.

A batch is checked request by request (identical requests once) and the accepted ones
are inserted in one transaction. A request's ``submission_id`` makes a retried
submission answer with the jobs it already made, never with new ones.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from procset import ProcSet
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db import statistics
from oar_celery.db.models import JobSubmission
from oar_celery.db.session import now, session_scope
from oar_celery.head.lib import admission, reply_tokens
from oar_celery.protocol.messages import ErrorAnswer, SubmitAnswer, SubmitRequest
from oar_celery.scheduler.errors import RequestError

logger = logging.getLogger(__name__)


#: What a client told "nothing was submitted" is answered when its deadline has passed.
ABANDONED = "the submission was abandoned: its client had stopped waiting (nothing was submitted)"


class Abandoned(Exception):
    """The client's deadline passed before the new jobs were committed: the transaction is rolled back."""


def submit_request(request: SubmitRequest) -> list[int]:
    """Check and insert one request; the new job ids. Raises RequestError."""
    answer = submit_requests([request])[0]
    if "error" in answer:
        raise RequestError(cast(ErrorAnswer, answer)["error"])
    return answer["job_ids"]


def _check_one(session: Any, request: object, cache: dict[str, Any]) -> Any:
    """Admission of one request of a batch: a Submission, or the one-line refusal.

    Identical requests (a script submitting the same job many times) are
    checked once: the checks read the same queues and resources anyway.
    """
    if not isinstance(request, dict):
        return f"bad request: expected a dict, got {type(request).__name__}"
    key = json.dumps({k: v for k, v in request.items() if k != "submission_id"}, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = admission.check(session, cast(SubmitRequest, request), settings())
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


def submit_requests(requests: list[SubmitRequest], deadline: float | None = None) -> list[SubmitAnswer | ErrorAnswer]:
    """Check every request, insert the accepted ones in one transaction; one answer per request.

    A request carrying a ``submission_id`` already seen is answered with the
    jobs it created then: a client that got no answer (the head died, the
    broker restarted) submits again with the same id and no job is doubled.
    Two copies racing end in a key violation; the second pass answers both.
    """
    try:
        return _submit_once(requests, deadline)
    except IntegrityError:
        return _submit_once(requests, deadline)


def _accepted(job_ids: list[int]) -> SubmitAnswer:
    """The ids, and the reply token of the first job: where a reservation's verdict will wait for its client."""
    return SubmitAnswer(job_ids=job_ids, reply=reply_tokens.token(job_ids[0]))


def _bound_by(session: Session, deadline: float | None) -> None:
    """On PostgreSQL, no lock wait nor statement of this transaction goes past the client's deadline."""
    if deadline is None or session.get_bind().dialect.name != "postgresql":
        return
    left = str(max(1, int((deadline - now()) * 1000)))
    # both in one round trip; set_config(..., true) is SET LOCAL
    session.execute(text("SELECT set_config('lock_timeout', :left, true), "
                         "set_config('statement_timeout', :left, true)"), {"left": left})


def _past(deadline: float | None) -> bool:
    return deadline is not None and now() >= deadline


def _submit_once(requests: list[SubmitRequest], deadline: float | None) -> list[SubmitAnswer | ErrorAnswer]:
    at = now()
    with session_scope() as session:
        _bound_by(session, deadline)
        known = known_submissions(session, [sid for r in requests if (sid := _submission_id(r))])
        cache: dict[str, Any] = {}
        late = _past(deadline)
        checked = [
            known[sid] if (sid := _submission_id(request)) in known
            else ABANDONED if late else _check_one(session, request, cache)
            for request in requests
        ]
        fresh = [(r, c) for r, c in zip(requests, checked, strict=True) if isinstance(c, admission.Submission)]
        inserted = admission.insert_many(session, [c for _, c in fresh], at=at)
        session.add_all(
            JobSubmission(submission_id=sid, job_ids=json.dumps(ids), submitted_at=at)
            for (request, _), ids in zip(fresh, inserted, strict=True)
            if (sid := _submission_id(request))
        )
        session.flush()
        if fresh and _past(deadline):
            raise Abandoned(ABANDONED)
    statistics.refresh_after_burst(sum(len(ids) for ids in inserted))
    new_ids = iter(inserted)
    answers: list[SubmitAnswer | ErrorAnswer] = [
        _accepted(outcome)
        if isinstance(outcome, list)
        else _accepted(next(new_ids))
        if isinstance(outcome, admission.Submission)
        else ErrorAnswer(error=outcome)
        for outcome in checked
    ]
    new_jobs = str(ProcSet(*(job_id for ids in inserted for job_id in ids))) or "none"
    logger.info("%d submission(s): %d inserted (jobs %s), %d answered again", len(requests), len(fresh), new_jobs,
                sum(isinstance(c, list) for c in checked))
    return answers
