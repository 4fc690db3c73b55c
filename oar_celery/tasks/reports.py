"""The head's side of bipbip: what nodes report about the jobs they run.

Both reports are idempotent (conditional updates), so they are acknowledged
late and a redelivered or re-sent report changes nothing the second time.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from oar_celery import judas
from oar_celery.almighty import notify
from oar_celery.celery_app import app, node_queue
from oar_celery.db.models import STARTED_STATES, FragJob, Job
from oar_celery.db.session import now, session_scope
from oar_celery.transitions import add_event, finish, set_state

logger = logging.getLogger(__name__)

#: Events recorded when a node ends a job for a reason other than its own exit.
EVENT_FOR_REASON = {
    "walltime": "WALLTIME",
    "prologue_error": "PROLOGUE_ERROR",
    "epilogue_error": "EPILOGUE_ERROR",
    "launch_error": "LAUNCHING_ERROR",
    "user_unknown": "LAUNCHING_ERROR",
}


@app.task(name="oar.head.job_running", acks_late=True, ignore_result=True)
def job_running(job_id: int, host: str, pid: int | None = None) -> None:
    """The node started the job: ``Launching`` → ``Running``."""
    with session_scope() as session:
        moved = set_state(session, [job_id], "Running", expected=("Launching",), start_time=now())
        row = session.execute(select(Job.state, Job.notify).where(Job.job_id == job_id)).first()
    state, method = row if row is not None else (None, None)
    if moved:
        logger.info("job %s running on %s (pid %s)", job_id, host, pid)
        judas.notify_later(job_id, method, "RUNNING", f"job started on {host}")
    elif state in ("Error", "Terminated"):
        logger.warning("job %s reported running on %s but is %s: killing it", job_id, host, state)
        app.send_task("oar.node.kill", kwargs={"job_id": job_id, "grace": 1}, queue=node_queue(host))


def succeeded(exit_code: int | None, reason: str) -> bool:
    """OAR's exit semantics: only a job that exited 0 by itself is ``Terminated``."""
    return exit_code == 0 and reason in ("exited", "epilogue_error")


def ran(exit_code: int | None, reason: str) -> bool:
    """Whether the job's own command started (it has an exit status and did not fail to launch)."""
    return exit_code is not None and reason not in ("launch_error", "prologue_error", "user_unknown")


@app.task(name="oar.head.job_ended", acks_late=True, ignore_result=True)
def job_ended(job_id: int, host: str, exit_code: int | None, reason: str = "exited", message: str = "") -> None:
    """The job's process is gone: ``Terminated`` on exit 0, ``Error`` (exit code kept) otherwise."""
    ok = succeeded(exit_code, reason)
    text = message or _describe(exit_code, reason)
    with session_scope() as session:
        # the end report may overtake the running one (two head processes): the job ran all the same
        started_here = ran(exit_code, reason) and set_state(
            session, [job_id], "Running", expected=("Launching",), start_time=now()
        )
        moved = finish(
            session,
            [job_id],
            "Terminated" if ok else "Error",
            expected=STARTED_STATES,
            message=text,
            exit_code=exit_code,
        )
        method = None
        if moved:
            event = EVENT_FOR_REASON.get(reason)
            if event:
                add_event(session, event, job_id, text, hosts=[host], to_check=reason != "walltime")
            frag = session.get(FragJob, job_id)
            if frag is not None and frag.frag_state in ("LEON", "TIMER_ARMED"):
                frag.frag_state = "FRAGGED"
            method = session.scalar(select(Job.notify).where(Job.job_id == job_id))
    if moved:
        logger.info("job %s ended on %s: %s", job_id, host, text)
        if started_here:
            judas.notify_later(job_id, method, "RUNNING", f"job started on {host}")
        judas.notify_later(job_id, method, "END" if ok else "ERROR", text)
        after_end(job_id, exit_code, reason)
        notify(["Term"] + (["ChState"] if reason in EVENT_FOR_REASON and reason != "walltime" else []))


def after_end(job_id: int, exit_code: int | None, reason: str = "exited") -> None:
    """Resubmit an ``idempotent`` job that asked for it by exiting 99 (OAR's convention).

    Only the report that ended the job gets here (the move to ``Error`` is a
    conditional update), so a redelivered report never resubmits twice.
    """
    if exit_code != 99 or reason != "exited":
        return
    from oar_celery.tasks.submit import resubmit_if_idempotent

    resubmit_if_idempotent(job_id)


def _describe(exit_code: int | None, reason: str) -> str:
    if reason == "exited":
        return f"the job exited with code {exit_code}"
    if reason == "killed":
        return "the job was killed"
    if reason == "walltime":
        return "the job was killed at its walltime"
    return reason.replace("_", " ")
