"""The hosts a job holds resources on: where its kills, signals, suspends and notifications go."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.db.models import AssignedResource, Job, Resource


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
