"""Resubmission of ``idempotent`` jobs: a new job made from an old one's request.

The node reports, the node failures and the besteffort kills can each end an
idempotent job; all three resubmit it through here.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from oar_celery.db.models import Job, JobType
from oar_celery.db.session import session_scope
from oar_celery.head.lib.submission import submit_request
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.bus import notify
from oar_celery.protocol.messages import SubmitRequest
from oar_celery.protocol.states import ReservationState
from oar_celery.scheduler.walltime import format_walltime

logger = logging.getLogger(__name__)


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
    return job.reservation == ReservationState.NONE and killed is None and ran > IDEMPOTENT_MIN_RUN


def request_of(session: Any, job: Job) -> SubmitRequest:
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
