"""``oar.almighty.submit``: admission of a new job on the head, then a ``Qsub``.

``oar.almighty.submit_many(requests)`` takes a list of requests and answers
``{"results": [...]}``, one ``submit`` answer per request: the client API's
fast path, one message and one transaction for a whole batch.

Not acknowledged late: a client that got no answer submits again itself,
with the same ``submission_id``, and is answered with the jobs already made.
No phantom submission: a request carries its client's ``deadline``, past
which the head commits no new job (:mod:`oar_celery.head.lib.submission`), so
a client that gave up and said so is right. A database that goes away for a
few seconds (a restart, a failover) is waited for, up to that deadline,
instead of refusing the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from oar_celery.config import settings
from oar_celery.head.lib.submission import ABANDONED, Abandoned, submit_requests
from oar_celery.protocol.bus import notify
from oar_celery.protocol.limits import limit_problem, limits_of
from oar_celery.protocol.messages import ErrorAnswer, ManyAnswer, SubmitAnswer, SubmitRequest

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Pause between two tries while the database is away.
RETRY_PAUSE = 0.5


def _transient(error: SQLAlchemyError) -> bool:
    """A lost or refused connection (a restart), not a statement the database refused."""
    return isinstance(error, DBAPIError) and (error.connection_invalidated or _connection_lost(error))


def _connection_lost(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(sign in text for sign in (
        "connection", "server closed", "terminating", "shutting down", "starting up", "could not connect",
    ))


def _until(deadline: float | None, attempt: Callable[[], T]) -> T:
    """``attempt()``, again while the database is away and the deadline (or the client timeout) allows."""
    stop = deadline if deadline is not None else time.time() + settings().client_timeout
    while True:
        try:
            return attempt()
        except SQLAlchemyError as error:
            if not _transient(error) or time.time() + RETRY_PAUSE >= stop:
                raise
            logger.warning("database away during a submission (%s): trying again", type(error).__name__)
            time.sleep(RETRY_PAUSE)


def _timed_out(error: SQLAlchemyError, deadline: float | None) -> bool:
    """The transaction ran into the client's deadline (PostgreSQL's lock or statement timeout, or the clock)."""
    if deadline is None:
        return False
    code = getattr(getattr(error, "orig", None), "pgcode", None)
    return code in ("55P03", "57014") or time.time() >= deadline


def _deadline(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _answer(request: SubmitRequest, deadline: float | None) -> SubmitAnswer | ErrorAnswer:
    problem = limit_problem(request, limits_of(settings()))
    if problem:
        return {"error": problem}
    try:
        return _until(deadline, lambda: submit_requests([request], deadline)[0])
    except Abandoned:
        logger.warning("submission %s abandoned: its client's deadline passed", request.get("submission_id"))
        return {"error": ABANDONED}
    except SQLAlchemyError as error:
        logger.exception("submission failed")
        if _timed_out(error, deadline):
            return {"error": ABANDONED}
        return {"error": f"the database refused the job: {type(error).__name__}"}


def submit(request: SubmitRequest, deadline: float | None = None) -> SubmitAnswer | ErrorAnswer:
    answer = _answer(request, _deadline(deadline))
    if "job_ids" in answer:
        notify(["Qsub"])
    return answer


def submit_many(requests: list[SubmitRequest], deadline: float | None = None) -> ManyAnswer | ErrorAnswer:
    """Many submissions in one message and one transaction: ``{"results": [answer per request]}``.

    Each answer is what ``oar.almighty.submit`` would have answered for that
    request alone; a refused request writes nothing and does not stop the others.
    One ``Qsub`` for the whole batch.
    """
    if not isinstance(requests, list):
        return {"error": "bad request: expected a list of requests"}
    limit = _deadline(deadline)
    limits = limits_of(settings())
    problems = [limit_problem(request, limits) for request in requests]
    fine = [request for request, problem in zip(requests, problems, strict=True) if problem is None]
    try:
        done = iter(_until(limit, lambda: submit_requests(fine, limit)) if fine else [])
    except Abandoned:
        return {"error": ABANDONED}
    except SQLAlchemyError as error:
        logger.exception("batch submission failed")
        if _timed_out(error, limit):
            return {"error": ABANDONED}
        return {"error": f"the database refused the jobs: {type(error).__name__}"}
    results: list[SubmitAnswer | ErrorAnswer] = [
        ErrorAnswer(error=problem) if problem else next(done) for problem in problems
    ]
    if any("job_ids" in answer for answer in results):
        notify(["Qsub"])
    return {"results": results}
