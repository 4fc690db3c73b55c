"""``oarwalltime`` on the head: a running job's walltime change request, and its status, with OAR3's rules.

The job's owner (or root, or the admin user) asks for ``+DURATION``,
``-DURATION`` or a new walltime; the request must stay within the queue's
``OAR_WALLTIME_MAX_INCREASE`` in all (the admin is not bound by it), on a job
whose walltime is at least ``OAR_WALLTIME_MIN_FOR_CHANGE``; ``--delay-next-jobs``
is for the users ``OAR_WALLTIME_ALLOWED_USERS_TO_DELAY_JOBS`` names. A request
replaces the job's pending one; the scheduler grants it at its next rounds,
as far as the Gantt allows (:mod:`oar_celery.head.lib.walltime_changes`).
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from oar_celery.config import Settings, settings
from oar_celery.db.models import Job, MoldableJobDescription, WalltimeChange
from oar_celery.db.session import now, session_scope
from oar_celery.head.lib.errors import Refused
from oar_celery.head.lib.walltime_changes import per_queue, signed
from oar_celery.protocol.bus import notify
from oar_celery.protocol.messages import ErrorAnswer, LinesAnswer
from oar_celery.protocol.names import Message
from oar_celery.protocol.states import JobState
from oar_celery.scheduler.walltime import format_walltime

_CHANGE = re.compile(r"^([-+]?)(\d+)(?::(\d+)(?::(\d+))?)?$")


def parse_change(text: str, walltime: int) -> int:
    """``+1:30``, ``-0:10``, ``2:00:00`` (a new walltime) → signed seconds to add."""
    match = _CHANGE.match(text.strip())
    if not match:
        raise Refused(f"bad walltime change '{text}': expected [+|-]HH[:MM[:SS]]")
    sign, hours, minutes, seconds = match.groups()
    value = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    return -value if sign == "-" else value if sign == "+" else value - walltime


def _job(session: Session, job_id: int) -> tuple[Job, int]:
    job = session.get(Job, job_id)
    if job is None:
        raise Refused(f"job {job_id} does not exist")
    moldable = session.get(MoldableJobDescription, job.assigned_moldable_job) if job.assigned_moldable_job else None
    return job, moldable.moldable_walltime if moldable else 0


def _users(text: str) -> set[str]:
    return {name for name in re.split(r"[,\s]+", str(text)) if name}


def change(user: str, job_id: int, new_walltime: str, delay_next_jobs: bool = False) -> list[str]:
    """Record a walltime change request; the line to print. Raises Refused."""
    config = settings()
    _enabled(config)
    with session_scope() as session:
        job, walltime = _job(session, job_id)
        admin = config.is_admin(user)
        if job.job_user != user and not admin:
            raise Refused(f"job {job_id} does not belong to {user}")
        if job.state != JobState.RUNNING:
            raise Refused(f"job {job_id} is not running")
        seconds = parse_change(new_walltime, walltime)
        minimum = int(per_queue(config.walltime_min_for_change, job.queue_name) or 0)
        if walltime < minimum:
            raise Refused(f"walltime change is not allowed for a job with walltime < {format_walltime(minimum)}")
        allowed = _users(per_queue(config.walltime_allowed_users_to_delay_jobs, job.queue_name))
        if delay_next_jobs and "*" not in allowed and user not in allowed and not admin:
            raise Refused("walltime change for this job is not allowed to delay other jobs")
        remaining = int(job.start_time + walltime + job.suspended_time - now())
        seconds = max(seconds, -max(0, remaining))  # never end before now
        record = session.get(WalltimeChange, job_id) or WalltimeChange(
            job_id=job_id, pending=0, force="NO", delay_next_jobs="NO", granted=0, granted_with_force=0,
            granted_with_delay_next_jobs=0,
        )
        most = int(per_queue(config.walltime_max_increase, job.queue_name, walltime) or 0)
        if most != -1 and record.granted + seconds > most and not admin:
            raise Refused(f"the walltime cannot increase by more than {format_walltime(most)}")
        updated = record.pending != 0
        record.pending = seconds
        record.delay_next_jobs = "YES" if delay_next_jobs and seconds > 0 else "NO"
        session.merge(record)
    notify([Message.SCHEDULING])
    what = "updated" if updated else "registered"
    return [f"Accepted: walltime change request {what} for job {job_id}, it will be handled shortly"]


def status(user: str, job_id: int) -> list[str]:
    """``oarwalltime JOBID``: the walltime, what may still be granted, what was and what is pending."""
    config = settings()
    _enabled(config)
    del user  # anyone may look, as oarstat
    with session_scope() as session:
        job, walltime = _job(session, job_id)
        record = session.get(WalltimeChange, job_id)
        if job.state not in (JobState.RUNNING, JobState.TERMINATED, JobState.ERROR) or not walltime:
            return [f"Walltime change status for job {job_id} (job is not running yet):", "  N/A"]
        granted = record.granted if record else 0
        pending = record.pending if record else 0
        delay = " (will possibly delay next jobs)" if record and record.delay_next_jobs == "YES" else ""
        if job.state != JobState.RUNNING:
            return [f"Walltime change status for job {job_id} (job is not running):",
                    f"  Walltime: {format_walltime(walltime):>11}", f"  Granted: {signed(granted):>12}",
                    f"  Unsatisfied: {signed(pending):>8}{delay}"]
        most = int(per_queue(config.walltime_max_increase, job.queue_name, walltime - granted) or 0)
        minimum = int(per_queue(config.walltime_min_for_change, job.queue_name) or 0)
        possible = "+0:00:00" if walltime < minimum else "UNLIMITED" if most == -1 else signed(most - granted)
        return [f"Walltime change status for job {job_id} (job is running):",
                f"  Current walltime: {format_walltime(walltime):>11}", f"  Possible increase: {possible:>10}",
                f"  Already granted: {signed(granted):>12}", f"  Pending/unsatisfied: {signed(pending):>8}{delay}"]


def _enabled(config: Settings) -> None:
    if not config.walltime_change_enabled:
        raise Refused("walltime change is disabled on this cluster (OAR_WALLTIME_CHANGE_ENABLED)")


def walltime_task(
    user: str, job_id: int, new_walltime: str | None = None, delay_next_jobs: bool = False
) -> LinesAnswer | ErrorAnswer:
    try:
        if new_walltime is None:
            return {"results": status(user, int(job_id))}
        return {"results": change(user, int(job_id), str(new_walltime), bool(delay_next_jobs))}
    except Refused as refusal:
        return {"error": str(refusal)}
