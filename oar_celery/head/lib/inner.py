"""Inner jobs end with their container, as in OAR: checked at the start of every full scheduling round.

A container that has ended (``Terminated`` or ``Error``, by its walltime, its
end or ``oardel``; for ``container=NAME``, the last live job of that name)
takes its inner jobs with it: the running ones are fragged
(Leon kills them), the ones still waiting go to ``Error`` with the reason.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.db.models import CURRENT_STATES, FINAL_STATES, STARTED_STATES, FragJob, Job, JobType
from oar_celery.db.session import now
from oar_celery.head.lib.transitions import add_event, finish
from oar_celery.protocol.states import FragState, JobState

_INNER_OF_LIVE_JOBS = (
    select(JobType.job_id, JobType.type, Job.state)
    .join(Job, Job.job_id == JobType.job_id)
    .where(JobType.type.like("inner=%"), JobType.types_index == "CURRENT", Job.state.in_(CURRENT_STATES))
)
_LIVE_NAMED_CONTAINERS = (
    select(JobType.type)
    .join(Job, Job.job_id == JobType.job_id)
    .where(JobType.type.like("container=%"), JobType.types_index == "CURRENT", Job.state.in_(CURRENT_STATES))
)
WAITING_STATES = (JobState.WAITING, JobState.HOLD, JobState.TO_LAUNCH)


def _ended_containers(session: Session, names: set[str]) -> set[str]:
    """Which of these containers have ended: a job id that is over, a name no live job carries any more."""
    ids = {int(name) for name in names if name.isdigit()}
    ended = {str(job_id) for job_id in session.scalars(
        select(Job.job_id).where(Job.job_id.in_(ids), Job.state.in_(FINAL_STATES))
    )} if ids else set()
    named = {name for name in names if not name.isdigit()}
    if named:
        live = {kind.partition("=")[2] for kind in session.scalars(_LIVE_NAMED_CONTAINERS)}
        ended |= named - live
    return ended


def end_orphans(session: Session) -> list[int]:
    """Frag the running inner jobs of ended containers, refuse the waiting ones; the ids fragged."""
    inner = [(job_id, kind.partition("=")[2], state) for job_id, kind, state in session.execute(_INNER_OF_LIVE_JOBS)]
    if not inner:
        return []
    gone = _ended_containers(session, {c for _, c, _ in inner})
    fragged: list[int] = []
    for job_id, container, state in inner:
        if container not in gone:
            continue
        message = f"its container {container} has ended"
        if state in WAITING_STATES:
            finish(session, [job_id], JobState.ERROR, expected=WAITING_STATES, message=message)
        elif state in STARTED_STATES and session.get(FragJob, job_id) is None:
            session.add(FragJob(frag_id_job=job_id, frag_date=now(), frag_state=FragState.LEON))
            add_event(session, "CONTAINER_ENDED", job_id, message)
            fragged.append(job_id)
    return fragged
