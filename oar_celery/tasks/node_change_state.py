"""NodeChangeState: applies the requested resource state changes.

A change of state is asked for by writing ``next_state`` (``oarnodesetting``,
Sarko, Finaud, Leon); this module is the one place that applies it, logs it
in ``resource_logs``, and frags the jobs that ran on a resource that became
``Dead`` or ``Suspected``.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.almighty import notify
from oar_celery.db.models import ACTIVE_STATES, AssignedResource, Job, Resource, ResourceLog
from oar_celery.db.session import now, session_scope
from oar_celery.tasks.leon import request_frag

logger = logging.getLogger(__name__)

#: States whose resources cannot keep their jobs.
LOST_STATES = ("Dead", "Suspected")


def run_node_change_state() -> None:
    with session_scope() as session:
        changed = apply_next_states(session)
        fragged = frag_jobs_on(session, [rid for rid, state in changed if state in LOST_STATES])
    if fragged:
        notify(["Qdel"])


def apply_next_states(session: Session) -> list[tuple[int, str]]:
    """Move every resource to its requested state; the (id, new state) pairs that changed."""
    at = now()
    rows = session.execute(
        select(Resource.resource_id, Resource.network_address, Resource.state, Resource.next_state).where(
            Resource.next_state != "UnChanged"
        )
    ).all()
    changed: list[tuple[int, str]] = []
    for resource_id, host, state, next_state in rows:
        session.execute(
            update(Resource)
            .where(Resource.resource_id == resource_id)
            .values(state=next_state, next_state="UnChanged", state_since=at if next_state != state else Resource.state_since)
        )
        if next_state == state:
            continue
        session.execute(
            update(ResourceLog)
            .where(ResourceLog.resource_id == resource_id, ResourceLog.attribute == "state", ResourceLog.date_stop == 0)
            .values(date_stop=at)
        )
        session.add(ResourceLog(resource_id=resource_id, attribute="state", value=next_state, date_start=at))
        changed.append((resource_id, next_state))
        logger.info("resource %s (%s): %s -> %s", resource_id, host, state, next_state)
    return changed


def frag_jobs_on(session: Session, resource_ids: list[int]) -> list[int]:
    """Frag the active jobs holding any of these resources."""
    if not resource_ids:
        return []
    job_ids = list(
        session.scalars(
            select(Job.job_id)
            .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
            .where(
                AssignedResource.resource_id.in_(resource_ids),
                AssignedResource.assigned_resource_index == "CURRENT",
                Job.state.in_(ACTIVE_STATES),
            )
            .distinct()
        )
    )
    for job_id in job_ids:
        request_frag(session, job_id, "oar")
    return job_ids
