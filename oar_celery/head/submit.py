"""``oar.almighty.submit``: admission of a new job on the head, then a ``Qsub``.

``oar.almighty.submit_many(requests)`` takes a list of requests and answers
``{"results": [...]}``, one ``submit`` answer per request: the client API's
fast path, one message and one transaction for a whole batch.

Not acknowledged late: a client that got no answer submits again itself,
with the same ``submission_id``, and is answered with the jobs already made.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from oar_celery.head.lib.submission import submit_requests
from oar_celery.protocol.bus import notify
from oar_celery.protocol.messages import ErrorAnswer, ManyAnswer, SubmitAnswer, SubmitRequest

logger = logging.getLogger(__name__)


def _answer(request: SubmitRequest) -> SubmitAnswer | ErrorAnswer:
    try:
        return submit_requests([request])[0]
    except SQLAlchemyError as error:
        logger.exception("submission failed")
        return {"error": f"the database refused the job: {type(error).__name__}"}


def submit(request: SubmitRequest) -> SubmitAnswer | ErrorAnswer:
    answer = _answer(request)
    if "job_ids" in answer:
        notify(["Qsub"])
    return answer


def submit_many(requests: list[SubmitRequest]) -> ManyAnswer | ErrorAnswer:
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


