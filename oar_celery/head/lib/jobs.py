"""How an ``oardel`` is recorded: Leon's frag request, which the control requests, Sarko and NodeChangeState make too.

OAR's modules never import each other, so it lives here, in the head's library.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from oar_celery.db.models import FragJob, Job
from oar_celery.db.session import now
from oar_celery.head.lib import judas
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.states import FragState

logger = logging.getLogger(__name__)


def request_frag(session: Session, job_id: int, user: str) -> None:
    """Record an ``oardel``: OAR's ``FRAG_JOB_REQUEST`` event and a ``LEON`` frag row.

    The job's owner hears of it once (``INFO``), however often Leon has to
    send the kill again.
    """
    if session.get(FragJob, job_id) is None:
        session.add(FragJob(frag_id_job=job_id, frag_date=now(), frag_state=FragState.LEON))
        job = session.get(Job, job_id)
        if job is not None:
            judas.notify_later(job_id, job.notify, "INFO", f"user {user} asked to delete the job")
    add_event(session, "FRAG_JOB_REQUEST", job_id, f"user {user} requested to frag the job {job_id}")
