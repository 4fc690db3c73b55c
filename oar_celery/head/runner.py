"""Runner: answers waiting clients and launches jobs on their first node.

Per OAR's seed: ``toError`` jobs get "BAD JOB" on their waiting client;
``toAckReservation`` jobs get their reservation's start, or are fragged when
the client cannot be reached; ``toLaunch`` jobs move to ``Launching`` (a
conditional update, so a job is launched at most once) and a launch task goes
to the queue of the job's first node.

A launch whose node never reported back is sent again after
``LAUNCH_RESEND`` seconds: the node refuses a second start of the same job
and re-sends what it knows, so a launch message lost to a broker restart only
delays the job.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.db.models import Job
from oar_celery.db.session import execute, now, session_scope
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.launch import LAUNCH_RESEND, build_specs, send_launches, start_launching
from oar_celery.head.lib.reply_tokens import token
from oar_celery.head.lib.transitions import add_event, finish, set_state
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.names import client_key, launch_key, reply_key
from oar_celery.protocol.states import JobState

logger = logging.getLogger(__name__)

REPLY_TTL = 3600
#: Seconds a new reservation's client has to start listening before the job is fragged.
CLIENT_GRACE = 10.0


#: The states the Runner acts on.
RUNNER_STATES = (JobState.TO_ERROR, JobState.TO_ACK_RESERVATION, JobState.TO_LAUNCH, JobState.LAUNCHING)
#: Statements of every cycle, built once (building them cost more than running them).
_PRESENT = select(Job.state).where(Job.state.in_(RUNNER_STATES)).distinct()
_TO_LAUNCH = select(Job.job_id).where(Job.state == JobState.TO_LAUNCH)


def run_runner(context: Context) -> None:
    """Run only the steps that have jobs to act on: one indexed query tells which.

    The Runner closes every full round's cycle, and most find neither ``toError`` nor
    ``toAckReservation`` jobs: each step costs a transaction of its own.
    """
    with session_scope() as session:
        present = set(execute(session, _PRESENT).scalars())
    if JobState.TO_ERROR in present:
        answer_errors()
    if JobState.TO_ACK_RESERVATION in present:
        answer_reservations()
    if JobState.TO_LAUNCH in present or (JobState.LAUNCHING in present and _resend_due()):
        launch_jobs()


def reply(job_id: int, answer: dict[str, Any]) -> None:
    """Push an answer to the client waiting on this job (``oarsub -r``); called after the commit."""
    client = broker_redis()
    key = reply_key(job_id, token(job_id))
    client.rpush(key, json.dumps(answer))
    client.expire(key, REPLY_TTL)


def client_waiting(job_id: int) -> bool:
    """Whether an ``oarsub`` is still waiting for this job's answer."""
    return bool(broker_redis().exists(client_key(job_id, token(job_id))))


def answer_errors() -> None:
    with session_scope() as session:
        jobs = session.execute(select(Job.job_id, Job.message).where(Job.state == JobState.TO_ERROR)).all()
        moved = finish(session, [job_id for job_id, _ in jobs], JobState.ERROR, expected=(JobState.TO_ERROR,))
    for job_id, message in jobs:
        if job_id in moved:
            reply(job_id, {"status": "refused", "message": message or "BAD JOB"})


def answer_reservations() -> None:
    """Tell each waiting ``oarsub -r`` its start; frag the reservations nobody waits for.

    The client starts listening only once it has its job id, so a reservation
    younger than :data:`CLIENT_GRACE` without a listener is left for a later
    cycle rather than fragged.
    """
    granted: dict[int, float] = {}
    with session_scope() as session:
        rows = session.execute(
            select(Job.job_id, Job.start_time, Job.submission_time).where(Job.state == JobState.TO_ACK_RESERVATION)
        ).all()
        for job_id, start, submitted in rows:
            if client_waiting(job_id):
                if set_state(session, [job_id], JobState.WAITING, expected=(JobState.TO_ACK_RESERVATION,)):
                    granted[job_id] = start
            elif now() - float(submitted or 0) < CLIENT_GRACE:
                continue
            else:
                message = "reservation client could not be reached: the job is fragged"
                if finish(session, [job_id], JobState.ERROR, expected=(JobState.TO_ACK_RESERVATION,), message=message):
                    add_event(session, "CANNOT_NOTIFY_OARSUB", job_id, message)
    for job_id, start in granted.items():
        reply(job_id, {"status": "granted", "start": start})


def launch_jobs() -> None:
    with session_scope() as session:
        to_launch = list(execute(session, _TO_LAUNCH).scalars())
        specs = start_launching(session, to_launch)
        launching = {spec["job_id"] for spec in specs}
        specs += build_specs(session, [job_id for job_id in _launches_to_resend(session) if job_id not in launching])
    send_launches(specs)


#: When this process looks for launches to send again next (``time.monotonic()``).
_next_resend_check = 0.0


def _resend_due() -> bool:
    return time.monotonic() >= _next_resend_check


def _launches_to_resend(session: Session) -> list[int]:
    """``Launching`` jobs whose launch mark expired: their message may be lost.

    A mark lives :data:`LAUNCH_RESEND` seconds, so looking a few times per
    period is enough; every cycle did it, at the cost of a query and a round
    trip to Redis per cycle.
    """
    global _next_resend_check
    if not _resend_due():
        return []
    _next_resend_check = time.monotonic() + LAUNCH_RESEND / 4
    launching = list(session.scalars(select(Job.job_id).where(Job.state == JobState.LAUNCHING)))
    if not launching:
        return []
    pipe = broker_redis().pipeline(transaction=False)
    for job_id in launching:
        pipe.exists(launch_key(job_id))
    return [job_id for job_id, sent in zip(launching, pipe.execute(), strict=True) if not sent]


