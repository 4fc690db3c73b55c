"""Jobs on nodes that failed: ``Error`` now, best-effort kills, resubmission.

When a node goes ``Suspected`` or ``Dead`` its jobs cannot end well: waiting
for Leon's exterminate timer would keep their other nodes busy for minutes.
So their end is written at once (a conditional update, so a node's own end
report racing with us changes nothing twice), their resources are freed,
every node they held gets a kill (the failed one too: a frozen worker that
comes back must not keep running a job the head has ended), and
``idempotent`` jobs, which failed through no fault of their own, are
submitted again.

The database work happens in the caller's transaction; :meth:`Failures.after_commit`
sends the messages once that transaction is committed, so no node is told to
kill a job whose end was rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import ACTIVE_STATES, AssignedResource, FragJob, Job, Resource
from oar_celery.head.lib import sender
from oar_celery.head.lib.hosts import job_hosts
from oar_celery.head.lib.transitions import add_event, finish
from oar_celery.protocol.names import Task
from oar_celery.protocol.states import FragState, JobState

logger = logging.getLogger(__name__)

EVENT = "NODE_FAILURE"


@dataclass
class Failures:
    """Jobs ended because a node failed, and what is left to do after commit."""

    kills: dict[int, list[str]] = field(default_factory=dict)

    @property
    def job_ids(self) -> list[int]:
        return sorted(self.kills)

    def after_commit(self) -> list[int]:
        """Send the kills and resubmit idempotent jobs; the new job ids."""
        grace = settings().kill_grace
        sender.send(
            sender.to_node(host, Task.NODE_KILL, job_id=job_id, grace=grace)
            for job_id, hosts in self.kills.items()
            for host in hosts
        )
        from oar_celery.head.lib.resubmission import resubmit_if_idempotent

        resubmitted = []
        for job_id in self.job_ids:
            try:
                new_id = resubmit_if_idempotent(job_id)
            except Exception:  # a refused resubmission must not stop the others
                logger.exception("job %s could not be resubmitted", job_id)
                continue
            if new_id is not None:
                resubmitted.append(new_id)
        return resubmitted


def active_jobs_on(session: Session, resource_ids: list[int]) -> list[int]:
    """Jobs holding any of these resources now."""
    return _held(session, resource_ids, Job.job_id)


def busy_resources(session: Session, resource_ids: list[int]) -> list[int]:
    """The resources among these that an active job holds."""
    return _held(session, resource_ids, AssignedResource.resource_id)


def _held(session: Session, resource_ids: list[int], column: Any) -> list[int]:
    """``column`` of the current assignments of these resources to active jobs, each value once."""
    if not resource_ids:
        return []
    return list(dict.fromkeys(session.scalars(
        select(column)
        .select_from(AssignedResource)
        .join(Job, Job.assigned_moldable_job == AssignedResource.moldable_job_id)
        .where(
            AssignedResource.resource_id.in_(resource_ids),
            AssignedResource.assigned_resource_index == "CURRENT",
            Job.state.in_(ACTIVE_STATES),
        )
    )))


def fail_jobs_on(session: Session, resource_ids: list[int]) -> Failures:
    """End in ``Error`` the jobs holding these (failed) resources, naming the failed hosts."""
    failures = Failures()
    job_ids = active_jobs_on(session, resource_ids)
    if not job_ids:
        return failures
    failed_hosts = set(
        session.scalars(select(Resource.network_address).where(Resource.resource_id.in_(resource_ids)))
    )
    hosts = job_hosts(session, job_ids)
    for job_id in job_ids:
        lost = sorted(failed_hosts.intersection(hosts.get(job_id, [])))
        message = f"node(s) {','.join(lost)} failed while the job was launching or running"
        if not finish(session, [job_id], JobState.ERROR, expected=ACTIVE_STATES, message=message):
            continue
        add_event(session, EVENT, job_id, message, hosts=lost)
        session.execute(
            update(FragJob)
            .where(FragJob.frag_id_job == job_id, FragJob.frag_state != FragState.FRAGGED)
            .values(frag_state=FragState.FRAGGED)
        )
        failures.kills[job_id] = hosts.get(job_id, [])
        logger.warning("job %s: %s", job_id, message)
    return failures
