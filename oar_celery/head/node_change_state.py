"""NodeChangeState: applies the requested resource state changes.

A change of state is asked for by writing ``next_state`` (``oarnodesetting``,
Sarko, Finaud, Leon) or by an event that calls for a check (``to_check``:
a failed prologue or epilogue, an exterminated job). This
module is the one place that applies them, so that every change is logged in
``resource_logs`` and the jobs on the node are dealt with in one way:

- ``Suspected`` or ``Dead``: the node failed, its jobs go ``Error`` now
  (:mod:`.node_failures`);
- ``Absent`` or ``Dead`` asked by an admin waits until no job holds the
  resource (``oarnodesetting -n`` frags them first); the scheduler gives a
  resource with such a pending request no new job;
- ``Alive`` is refused to a resource whose ``available_upto`` has passed
  (desktop computing: the machine is no longer lent to the cluster), which
  then goes ``Absent``.

The admin hears of failed nodes through Judas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery import logs
from oar_celery.db.models import (
    ACTIVE_STATES,
    EventLog,
    EventLogHostname,
    Resource,
    ResourceLog,
)
from oar_celery.db.session import session_scope
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.failures import Failures, active_jobs_on, busy_resources, fail_jobs_on
from oar_celery.head.lib.jobs import request_frag
from oar_celery.head.lib.transitions import add_event, finish
from oar_celery.protocol.bus import notify
from oar_celery.protocol.states import JobState, ResourceState

logger = logging.getLogger(__name__)

#: States whose resources lost their jobs.
LOST_STATES = (ResourceState.DEAD, ResourceState.SUSPECTED)
#: Requested states that wait for the resource's jobs to end.
WITHDRAWN_STATES = (ResourceState.ABSENT, ResourceState.DEAD)
#: Events that put the blame on the node: their hosts are suspected. A launch
#: error the job caused (a missing directory, an unknown user) is the user's
#: fault, not the node's, and leaves the node alone.
SUSPECTING = ("PROLOGUE_ERROR", "EPILOGUE_ERROR", "EXTERMINATE_JOB", "NODE_ERROR")
#: ``available_upto`` values that mean "no limit".
NO_LIMIT = 2147483647


@dataclass(frozen=True)
class Change:
    resource_id: int
    host: str
    old: str
    new: str


def run_node_change_state(context: Context) -> None:
    with session_scope() as session:
        check_events(session)
        changes = apply_next_states(session, context.now())
        lost = [c.resource_id for c in changes if c.new in LOST_STATES]
        failures = fail_jobs_on(session, lost)
        fragged = frag_jobs_on(session, [c.resource_id for c in changes if c.new in WITHDRAWN_STATES])
    failures.after_commit()
    tell_admin(changes, failures)
    messages = (["Term"] if failures.job_ids else []) + (["Qdel"] if fragged else [])
    notify(messages)


def check_events(session: Session) -> list[int]:
    """Handle the events that call for a check: their jobs end, their hosts are suspected.

    Taking an event is a conditional update (``to_check`` YES → NO), so two
    cycles never handle the same event twice. Hosts suspected this way keep
    ``finaud_decision = NO``: Finaud does not bring them back, an admin does.
    """
    taken = list(
        session.scalars(
            update(EventLog)
            .where(EventLog.to_check == "YES")
            .values(to_check="NO")
            .returning(EventLog.event_id)
            .execution_options(synchronize_session=False)
        )
    )
    if not taken:
        return []
    events = session.execute(
        select(EventLog.event_id, EventLog.type, EventLog.job_id).where(EventLog.event_id.in_(taken))
    ).all()
    hosts_of: dict[int, list[str]] = {}
    for event_id, host in session.execute(
        select(EventLogHostname.event_id, EventLogHostname.hostname).where(EventLogHostname.event_id.in_(taken))
    ):
        hosts_of.setdefault(event_id, []).append(host)
    for event_id, kind, job_id in events:
        hosts = sorted(hosts_of.get(event_id, []))
        if kind not in SUSPECTING:
            continue
        if job_id:
            _end_job_of_event(session, job_id, kind, hosts)
        if hosts:
            suspect_hosts(session, hosts, f"event {kind} of job {job_id}")
    return taken


def _end_job_of_event(session: Session, job_id: int, kind: str, hosts: list[str]) -> None:
    message = f"{kind} on {','.join(hosts) or 'its node'}"
    if finish(session, [job_id], JobState.ERROR, expected=ACTIVE_STATES, message=message):
        logger.warning("job %s set Error by event %s", job_id, kind)


def suspect_hosts(session: Session, hosts: list[str], why: str) -> None:
    """Ask for ``Suspected`` on the hosts' ``Alive`` resources that have no other request."""
    suspected = session.execute(
        update(Resource)
        .where(Resource.network_address.in_(hosts), Resource.state == ResourceState.ALIVE,
               Resource.next_state == "UnChanged")
        .values(next_state=ResourceState.SUSPECTED, finaud_decision="NO")
        .returning(Resource.network_address)
        .execution_options(synchronize_session=False)
    ).all()
    for host in sorted({host for (host,) in suspected}):
        logger.warning("node %s will be Suspected: %s", host, why)


def apply_next_states(session: Session, at: float) -> list[Change]:
    """Move every resource to its requested state when it may; the changes made."""
    rows = session.execute(
        select(
            Resource.resource_id, Resource.network_address, Resource.state, Resource.next_state,
            Resource.available_upto,
        ).where(Resource.next_state != "UnChanged")
    ).all()
    busy = set(busy_resources(session, [r.resource_id for r in rows if r.next_state in WITHDRAWN_STATES]))
    changes: list[Change] = []
    for resource_id, host, state, wanted, upto in rows:
        if wanted in WITHDRAWN_STATES and resource_id in busy:
            continue  # an admin's request waits for the jobs to end
        new = _allowed(wanted, upto, at)
        if not _move(session, resource_id, state, wanted, new, at):
            continue  # the request changed meanwhile: the next cycle applies the new one
        if new != state:
            _log(session, resource_id, new, at)
            changes.append(Change(resource_id, host, state, new))
            logger.info("resource %s (%s): %s -> %s", resource_id, host, state, new)
    return changes


def _allowed(wanted: str, available_upto: float | None, at: float) -> str:
    """``Alive`` only while the resource is still lent to the cluster (desktop computing)."""
    if wanted == ResourceState.ALIVE and available_upto and 0 < available_upto < min(at, NO_LIMIT):
        return ResourceState.ABSENT
    return wanted


def _move(session: Session, resource_id: int, state: str, wanted: str, new: str, at: float) -> bool:
    """Conditional: only if the request is still ``wanted``; whether it was applied."""
    values: dict[str, object] = {"state": new, "next_state": "UnChanged"}
    if new != state:
        values["state_since"] = at
    if new == ResourceState.ALIVE:
        values["finaud_decision"] = "NO"
    moved = session.execute(
        update(Resource)
        .where(Resource.resource_id == resource_id, Resource.next_state == wanted)
        .values(**values)
        .returning(Resource.resource_id)
        .execution_options(synchronize_session=False)
    ).first()
    return moved is not None


def _log(session: Session, resource_id: int, state: str, at: float) -> None:
    session.execute(
        update(ResourceLog)
        .where(ResourceLog.resource_id == resource_id, ResourceLog.attribute == "state", ResourceLog.date_stop == 0)
        .values(date_stop=at)
        .execution_options(synchronize_session=False)
    )
    session.add(ResourceLog(resource_id=resource_id, attribute="state", value=state, date_start=at))


def frag_jobs_on(session: Session, resource_ids: list[int]) -> list[int]:
    """Frag the jobs still holding resources that went ``Absent`` or ``Dead``."""
    job_ids = active_jobs_on(session, resource_ids)
    for job_id in job_ids:
        request_frag(session, job_id, "oar")
        add_event(session, "FRAG_JOB_ON_WITHDRAWN_NODE", job_id, "a resource of the job was withdrawn")
    return job_ids


def tell_admin(changes: list[Change], failures: Failures) -> None:
    """Mail the admin about failed nodes (Judas; never raises)."""
    failed = sorted({c.host for c in changes if c.new in LOST_STATES})
    if not failed:
        return
    from oar_celery.head.lib import judas

    lines = [f"{c.host} resource {c.resource_id}: {c.old} -> {c.new}" for c in changes if c.new in LOST_STATES]
    if failures.job_ids:
        lines.append(f"jobs set Error: {' '.join(map(str, failures.job_ids))}")
    logs.oar_warn("nodes failed: %s", ", ".join(failed))
    judas.mail_admin(f"*OAR* node(s) {','.join(failed)} failed", "\n".join(lines) + "\n")
