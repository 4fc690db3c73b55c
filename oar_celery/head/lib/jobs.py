"""What several modules ask about a job: the hosts it runs on, and how an ``oardel`` is recorded.

Leon, Sarko, NodeChangeState, the control requests and Judas all need these; OAR's
modules never import each other, so they live here, in the head's library.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.db.models import AssignedResource, FragJob, Job, Resource
from oar_celery.db.session import now
from oar_celery.head.lib import judas
from oar_celery.head.lib.transitions import add_event

logger = logging.getLogger(__name__)


def job_hosts(session: Session, job_ids: list[int]) -> dict[int, list[str]]:
    """The hosts each job holds resources on, in resource order."""
    hosts: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(Job.job_id, Resource.network_address)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .join(Resource, Resource.resource_id == AssignedResource.resource_id)
        .where(Job.job_id.in_(job_ids))
        .order_by(Resource.resource_id)
    )
    for job_id, host in rows:
        if host not in hosts[job_id]:
            hosts[job_id].append(host)
    return hosts


def request_frag(session: Session, job_id: int, user: str) -> None:
    """Record an ``oardel``: OAR's ``FRAG_JOB_REQUEST`` event and a ``LEON`` frag row.

    The job's owner hears of it once (``INFO``), however often Leon has to
    send the kill again.
    """
    if session.get(FragJob, job_id) is None:
        session.add(FragJob(frag_id_job=job_id, frag_date=now(), frag_state="LEON"))
        job = session.get(Job, job_id)
        if job is not None:
            judas.notify_later(job_id, job.notify, "INFO", f"user {user} asked to delete the job")
    add_event(session, "FRAG_JOB_REQUEST", job_id, f"user {user} requested to frag the job {job_id}")
