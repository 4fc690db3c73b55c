"""The hosts a job holds resources on: where its kills, signals, suspends and notifications go."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import AssignedResource, Job, JobType, Resource

#: The types whose job runs on a host of the head's side (OAR's COSYSTEM_HOSTNAME / DEPLOY_HOSTNAME).
HEAD_SIDE_TYPES = ("cosystem", "deploy")


def head_side_host(types: list[str]) -> str | None:
    """Where a cosystem or deploy job runs, not on its nodes: the configured host."""
    for kind in types:
        name = kind.split("=")[0]
        if name in HEAD_SIDE_TYPES:
            config = settings()
            return (config.cosystem_hostname if name == "cosystem" else config.deploy_hostname) or None
    return None


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
    add_head_side_hosts(session, hosts)
    return hosts


def add_head_side_hosts(session: Session, hosts: dict[int, list[str]]) -> None:
    """A cosystem or deploy job runs on its configured host: its kills and signals go there first."""
    if not hosts:
        return
    rows = session.execute(
        select(JobType.job_id, JobType.type)
        .where(JobType.job_id.in_(list(hosts)), JobType.types_index == "CURRENT")
        .where(or_(*(JobType.type.like(f"{kind}%") for kind in HEAD_SIDE_TYPES)))
    )
    for job_id, kind in rows:
        runner = head_side_host([kind])
        if runner and runner not in hosts[job_id]:
            hosts[job_id].insert(0, runner)


def noop_jobs(session: Session, job_ids: list[int]) -> set[int]:
    """Those of ``job_ids`` that are noop: no node runs them, so none is asked to kill them."""
    if not job_ids:
        return set()
    return set(session.scalars(
        select(JobType.job_id)
        .where(JobType.job_id.in_(job_ids), JobType.type == "noop", JobType.types_index == "CURRENT")
    ))
