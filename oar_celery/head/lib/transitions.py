"""Changes of a job's state, and the events that explain them.

Every move is a conditional update (``UPDATE jobs ... WHERE state IN
(expected)``): when two actors race, for example a node's end report and an
``oardel``, exactly one of them wins and the other sees that it changed
nothing. Every change that happens is logged in ``job_state_logs``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from oar_celery.db.models import EventLog, EventLogHostname
from oar_celery.db.session import now
from oar_celery.head.lib import accounting
from oar_celery.head.lib.store import store_for

logger = logging.getLogger(__name__)


def set_state(
    session: Session,
    job_ids: Iterable[int],
    new_state: str,
    *,
    expected: Sequence[str],
    at: float | None = None,
    each: Mapping[str, Mapping[int, object]] | None = None,
    release: bool = False,
    **columns: object,
) -> list[int]:
    """Move the jobs still in one of ``expected`` to ``new_state``; the ids that moved.

    ``columns`` are set on every job that moves (a value, or a SQL expression
    such as ``Job.suspended_time + 3``); ``each`` gives a column a value per
    job (``exit_code`` ``None`` keeps the old one). ``release`` also frees
    the jobs' resources.
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return []
    at = now() if at is None else at
    each = {name: values for name, values in (each or {}).items() if values}
    moved = store_for(session).move(
        session, ids, new_state, expected=expected, at=at, each=each, release=release, columns=dict(columns)
    )
    if new_state in accounting.ENDED and moved:
        accounting.account(session, moved)
    return moved


def add_event(
    session: Session,
    kind: str,
    job_id: int,
    description: str,
    *,
    hosts: Iterable[str] = (),
    to_check: bool = False,
) -> None:
    """Record an event, OAR style: a type, a job, a text and the hosts it concerns."""
    event = EventLog(
        type=kind, job_id=job_id, date=now(), description=description[:4000], to_check="YES" if to_check else "NO"
    )
    session.add(event)
    hostnames = sorted(set(hosts))
    if hostnames:
        session.flush()
        session.add_all(EventLogHostname(event_id=event.event_id, hostname=host) for host in hostnames)
    logger.info("event %s job %s: %s", kind, job_id, description)


def finish(
    session: Session,
    job_ids: Sequence[int],
    new_state: str,
    *,
    expected: Sequence[str],
    message: str | None = None,
    exit_code: int | None = None,
) -> list[int]:
    """End jobs (``Terminated`` or ``Error``): stamp the stop time and free their resources."""
    at = now()
    columns: dict[str, Any] = {"stop_time": at}
    if message is not None:
        columns["message"] = message
    if exit_code is not None:
        columns["exit_code"] = exit_code
    return set_state(session, job_ids, new_state, expected=expected, at=at, release=True, **columns)


def finish_each(
    session: Session,
    ends: Mapping[int, tuple[str, int | None]],
    new_state: str,
    *,
    expected: Sequence[str],
) -> list[int]:
    """End many jobs in one statement, each with its own message and exit code (``None`` keeps it).

    A batch of node reports ends jobs with different texts, each given per
    job: one conditional ``UPDATE`` whatever the batch's size.
    """
    if not ends:
        return []
    at = now()
    each: dict[str, Mapping[int, object]] = {
        "message": {job_id: message for job_id, (message, _) in ends.items()},
        "exit_code": {job_id: code for job_id, (_, code) in ends.items()},
    }
    return set_state(session, list(ends), new_state, expected=expected, at=at, each=each, release=True, stop_time=at)
