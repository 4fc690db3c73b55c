"""Launch specs and their sending: what a node needs to run a job, one message per first node.

The Runner launches the jobs a full round left ``toLaunch``; the quick round
launches its own in its transaction. Both build the specs and send them here,
after commit.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, literal_column, null, select
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import AssignedResource, Job, JobType, MoldableJobDescription, Resource
from oar_celery.db.session import now
from oar_celery.head.lib import sender
from oar_celery.head.lib.hosts import head_side_host
from oar_celery.head.lib.launch_properties import properties_text
from oar_celery.head.lib.resources import has_property
from oar_celery.head.lib.store.sql import LAUNCH_COLUMNS
from oar_celery.head.lib.transitions import set_state
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.messages import LaunchSpec
from oar_celery.protocol.names import Task, launch_key
from oar_celery.protocol.output_files import output_paths
from oar_celery.protocol.states import JobState

logger = logging.getLogger(__name__)


LAUNCH_RESEND = 20
#: Seconds the holder of an ``oarsub -I`` job sleeps: longer than any walltime.
_HOLD = 2**31 - 1


def start_launching(session: Session, job_ids: list[int]) -> list[LaunchSpec]:
    """``toLaunch`` → ``Launching`` (a conditional update); the launch specs of the jobs that moved.

    The caller sends them with :func:`send_launches` once its transaction has
    committed, never before: a job is launched at most once.
    """
    specs = build_specs(session, set_state(session, job_ids, JobState.LAUNCHING, expected=(JobState.TO_LAUNCH,)))
    return start_without_node(session, specs)


def start_without_node(session: Session, specs: list[LaunchSpec]) -> list[LaunchSpec]:
    """noop jobs run nothing: ``Launching`` → ``Running`` here, as OAR's meta-scheduler does; the others' specs.

    A noop job holds its resources until its walltime (Sarko) or ``oardel``
    (Leon), which end it ``Terminated`` without asking a node.
    """
    noop = [spec["job_id"] for spec in specs if "noop" in spec["types"]]
    if not noop:
        return specs
    started = set(set_state(session, noop, JobState.RUNNING, expected=(JobState.LAUNCHING,), start_time=now()))
    for job_id in started:
        logger.info("job %s is noop: running without a node", job_id)
    return [spec for spec in specs if spec["job_id"] not in started and "noop" not in spec["types"]]




def send_launch(spec: LaunchSpec) -> None:
    """Send the launch task to the job's first node and remember when."""
    send_launches([spec])


def send_launches(specs: list[LaunchSpec]) -> None:
    """Every launch of a cycle in one round trip to Redis: one message per first node.

    Each node gets one ``oar.node.launch_many`` with all the jobs it is the
    first node of, so a round that starts four jobs on a node costs that node
    one task, not four. The messages are Celery's own
    (:func:`oar_celery.client.wire.task_message`, JSON, protocol 2), pushed
    in one pipeline with the ``oar:launch`` marks that time the re-sends:
    ``app.send_task`` costs a round trip and a task-sent event per message.
    """
    if not specs:
        return
    by_node: dict[str, list[LaunchSpec]] = defaultdict(list)
    for spec in specs:
        by_node[spec["hosts"][0]].append(spec)
    pipe = broker_redis().pipeline(transaction=False)
    for spec in specs:
        pipe.set(launch_key(spec["job_id"]), "1", ex=LAUNCH_RESEND)
    sender.send((sender.to_node(host, Task.NODE_LAUNCH_MANY, specs=on) for host, on in by_node.items()), pipe=pipe)
    pipe.execute()
    for spec in specs:
        logger.info("job %s sent to %s", spec["job_id"], spec["hosts"][0])


_LAUNCH_JOBS = (
    select(*(Job.__table__.c[name] for name in LAUNCH_COLUMNS), MoldableJobDescription.moldable_walltime)
    .outerjoin(MoldableJobDescription, MoldableJobDescription.moldable_id == Job.assigned_moldable_job)
    .where(Job.job_id.in_(bindparam("job_ids", expanding=True)))
)


def _launch_hosts(with_memory: bool) -> Any:
    """Each job's resources with their host, ``cpuset`` and, if the property exists, ``mem`` (MB per core)."""
    mem = literal_column("resources.mem") if with_memory else null()
    return (
        select(Job.job_id, Resource.resource_id, Resource.network_address, Resource.cpuset, mem)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .join(Resource, Resource.resource_id == AssignedResource.resource_id)
        .where(Job.job_id.in_(bindparam("job_ids", expanding=True)))
        .order_by(Resource.resource_id)
    )


_LAUNCH_HOSTS = _launch_hosts(False)
_LAUNCH_HOSTS_WITH_MEMORY = _launch_hosts(True)
_LAUNCH_TYPES = select(JobType.job_id, JobType.type).where(
    JobType.job_id.in_(bindparam("job_ids", expanding=True)), JobType.types_index == "CURRENT"
)


def build_specs(session: Session, job_ids: list[int]) -> list[LaunchSpec]:
    """What a node needs to run each job: command, user, hosts, nodefile, environment."""
    if not job_ids:
        return []
    jobs = {row.job_id: row for row in session.execute(_LAUNCH_JOBS, {"job_ids": job_ids})}
    hosts_of: dict[int, list[LaunchResource]] = defaultdict(list)
    query = _LAUNCH_HOSTS_WITH_MEMORY if has_property(session, "mem") else _LAUNCH_HOSTS
    for job_id, resource_id, address, cpuset, mem in session.execute(query, {"job_ids": job_ids}):
        hosts_of[job_id].append((resource_id, address, cpuset, mem))
    types: dict[int, list[str]] = defaultdict(list)
    for job_id, kind in session.execute(_LAUNCH_TYPES, {"job_ids": job_ids}):
        types[job_id].append(kind)
    properties = properties_text(session, job_ids)
    specs = [
        launch_spec(jobs[job_id], hosts_of[job_id], types[job_id], jobs[job_id].moldable_walltime)
        for job_id in job_ids
        if hosts_of.get(job_id)
    ]
    for spec in specs:
        spec["resource_properties"] = properties.get(spec["job_id"], "")
    return specs


#: A resource as a launch spec needs it: id, host, ``cpuset`` (the core's CPU id on its host), ``mem`` (MB or None).
LaunchResource = tuple[int, str, Any, Any]


def confinement_of(resources: list[LaunchResource]) -> dict[str, dict[str, Any]]:
    """Per host, the CPU ids of the job's cores (``cpusets``) and, where known, its memory in MB (``mem``)."""
    cpusets: dict[str, list[str]] = defaultdict(list)
    memory: dict[str, float] = defaultdict(float)
    for _, address, cpuset, mem in resources:
        if cpuset is not None and str(cpuset) not in cpusets[address]:
            cpusets[address].append(str(cpuset))
        if mem:
            memory[address] += float(mem)
    return {"cpusets": dict(cpusets), "mem": {host: int(total) for host, total in memory.items()}}


def launch_spec(job: Any, resources: list[LaunchResource], types: list[str], walltime: int | None) -> LaunchSpec:
    """What the node gets: ``job`` has the :data:`LAUNCH_COLUMNS`, ``resources`` are :data:`LaunchResource` by id."""
    hosts = list(dict.fromkeys(resource[1] for resource in resources))
    lines = sorted((resource[1] for resource in resources), key=hosts.index)
    runner = head_side_host(types)
    if runner:  # the job's script runs on that host, its nodefile still lists its nodes
        hosts = [runner, *(host for host in hosts if host != runner)]
    stdout, stderr = output_paths(job)
    walltime = walltime if walltime is not None else settings().default_walltime
    shell_job = job.job_type == "INTERACTIVE" and job.reservation == "None"  # oarsub -I
    return {
        "job_id": job.job_id,
        "user": job.job_user,
        # A command-less job holds its resources for its shells: a reservation until its walltime, an oarsub -I
        # until its shell ends, or Sarko kills it at its walltime (which oarwalltime may change).
        "command": job.command or f"sleep {_HOLD if shell_job else int(walltime)}",
        "interactive": job.job_type == "INTERACTIVE",
        # oarsub -I's client connects once the job runs; a reservation's shells come when they will
        "client_timeout": settings().interactive_connect_timeout if shell_job else 0.0,
        "directory": job.launching_directory,
        "name": job.job_name or "",
        "walltime": int(walltime),
        "hosts": hosts,
        "resources": [resource[0] for resource in resources],
        "nodefile": "".join(f"{line}\n" for line in lines),
        "stdout": stdout,
        "stderr": stderr,
        "env": json.loads(job.job_env) if job.job_env else {},
        "array_id": job.array_id,
        "array_index": job.array_index,
        "checkpoint": job.checkpoint,
        "checkpoint_signal": job.checkpoint_signal,
        "project": job.project,
        "types": types,
        "kill_grace": settings().kill_grace,
        **confinement_of(resources),  # type: ignore[typeddict-item]
    }
