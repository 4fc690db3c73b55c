"""The quick round: the first waiting jobs onto the resources that are free now.

A full round (:mod:`.scheduling`) re-plans every waiting job and stores the
whole Gantt; under a stream of short jobs it spent 60–80 ms on 2,000 waiting
jobs to start a handful of them, and OAR's minimum time between two rounds
then left freed cores idle. Between two full rounds the Almighty cycle runs
this one instead, as Slurm's event-driven pass does: the same policy on the
first ``k`` waiting jobs in priority order, ``k`` being the number of free
resources (no more jobs can start now).

No job outside that prefix is ahead of one inside it, so a job the quick
round starts never delays a job that was ahead of it. What needs the whole
queue is left to the full round, which follows within the minimum time:
reservations to answer or to start, besteffort jobs to kill, timesharing and
dependencies. Predictions of the jobs that wait are left as they were.

Karma and quotas hold here as in the full round. With karma on, the prefix
is the first ``k`` jobs in karma order (one accounting query, every waiting
job's row read without its alternatives). Quotas count the running jobs and
reservations, then the prefix's jobs in order, exactly what the full round
counts when it reaches the same jobs: a job of the prefix gets the same
answer from both, and one held back by a quota stays waiting (its message is
the full round's to write). The full round may start more (a job beyond the
prefix, when one inside it is held by a quota), never less.

The jobs it starts go on to ``Launching`` in the same transaction and are
sent to their nodes once it commits, as the Runner would have done: a cycle
with a quick round and no full round needs no Runner (Almighty still runs it
once a second, for the launches to send again).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from oar_celery.db.session import session_scope
from oar_celery.head.lib import gantt_writes, launch
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.fairshare import karma_of, record_karma
from oar_celery.head.lib.gantt_loads import load_waiting
from oar_celery.head.lib.launch_properties import properties_of
from oar_celery.head.lib.planning import Outcome, load_fixed, plan
from oar_celery.head.lib.quota_rules import quotas_for
from oar_celery.head.lib.resources import load_resources
from oar_celery.head.lib.store import store_for
from oar_celery.protocol.messages import LaunchSpec
from oar_celery.protocol.states import ResourceState
from oar_celery.scheduler import is_besteffort
from oar_celery.scheduler import types as sched

logger = logging.getLogger(__name__)


def run_quick_round(context: Context) -> Outcome | None:
    """Start what can start now among the first waiting jobs; None when only a full round may decide."""
    at = int(context.now())
    config = context.settings
    with session_scope() as session:
        fixed = load_fixed(session, at)
        if fixed.answers_due:
            return None
        placed, reservations = fixed.allocations, fixed.reservations
        if any(_needs_full_round(a) for a in placed) or any(r.start <= at for r in reservations.values()):
            return None
        resources, columns = load_resources(session)
        free = free_now(resources, placed, at)
        karma = karma_of(session, config, at) if free else None
        waiting = load_waiting(session, first=free, karma=karma)[0] if free else []
        if any(job.dependencies or _needs_full_round(job) for job in waiting):
            return None
        if not waiting:
            return Outcome()
        result = plan(config, at, resources, placed, waiting, columns, quotas_for(config, resources))
        starting = [p for p in result.placements if p.start <= at]
        specs = _start(session, starting, waiting, resources, context.now())
        launched = [spec["job_id"] for spec in specs]
        record_karma(session, config, launched, waiting)
    launch.send_launches(specs)
    if launched:
        logger.info("quick round: %d to launch of %d considered", len(launched), len(waiting))
    return Outcome(launched=launched)


def _start(
    session: Session,
    starting: list[sched.Allocation],
    waiting: list[sched.Job],
    resources: list[sched.Resource],
    at: float,
) -> list[LaunchSpec]:
    """``Waiting`` → ``Launching`` through the store (one statement on PostgreSQL); the specs, from what the
    round already holds (hosts, types, walltime) and the rows the store gives back."""
    alternatives = {job.id: [m.moldable_id for m in job.moldables] for job in waiting}
    rows = {row.job_id: row for row in store_for(session).start_now(session, starting, alternatives, at)}
    gantt_writes.forget_remembered({m for job_id in rows for m in alternatives.get(job_id, ())})
    by_id = {r.id: r for r in resources}
    specs: list[LaunchSpec] = []
    for a in starting:
        if a.job_id in rows:
            spec = launch.launch_spec(
                rows[a.job_id],
                [_launch_resource(by_id[r]) for r in sorted(a.resource_ids)],
                [f"{name}={value}" if value else name for name, value in a.types.items()],
                a.walltime,
            )
            spec["resource_properties"] = properties_of([by_id[r].properties for r in sorted(a.resource_ids)])
            specs.append(spec)
    return launch.start_without_node(session, specs)


def _launch_resource(resource: sched.Resource) -> launch.LaunchResource:
    return (resource.id, resource.network_address, resource.properties.get("cpuset"), resource.properties.get("mem"))


def free_now(resources: list[sched.Resource], placed: list[sched.Allocation], at: int) -> int:
    """How many ``Alive`` resources no running job holds at ``at``."""
    busy = {r for a in placed if a.start <= at for r in a.resource_ids}
    return sum(1 for r in resources if r.state == ResourceState.ALIVE and r.id not in busy)


def _needs_full_round(item: sched.Allocation | sched.Job) -> bool:
    """Besteffort (its kills) and timesharing (shared resources) are the full round's to decide."""
    return is_besteffort(item.types, item.queue) or "timesharing" in item.types
