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
import os
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, literal_column, null, select
from sqlalchemy.orm import Session

from oar_celery.almighty import broker_redis
from oar_celery.celery_app import node_queue
from oar_celery.config import settings
from oar_celery.db.models import AssignedResource, Job, JobType, MoldableJobDescription, Resource
from oar_celery.db.session import now, session_scope
from oar_celery.resources import has_property
from oar_celery.transitions import add_event, finish, set_state

logger = logging.getLogger(__name__)

LAUNCH_RESEND = 20
REPLY_TTL = 3600
#: Seconds a new reservation's client has to start listening before the job is fragged.
CLIENT_GRACE = 10.0


#: The states the Runner acts on.
RUNNER_STATES = ("toError", "toAckReservation", "toLaunch", "Launching")
#: Statements of every cycle, built once (building them cost more than running them).
_PRESENT = select(Job.state).where(Job.state.in_(RUNNER_STATES)).distinct()
_TO_LAUNCH = select(Job.job_id).where(Job.state == "toLaunch")


def run_runner() -> None:
    """Run only the steps that have jobs to act on: one indexed query tells which.

    The Runner closes every full round's cycle, and most find neither ``toError`` nor
    ``toAckReservation`` jobs: each step costs a transaction of its own.
    """
    with session_scope() as session:
        present = set(session.scalars(_PRESENT))
    if "toError" in present:
        answer_errors()
    if "toAckReservation" in present:
        answer_reservations()
    if "toLaunch" in present or ("Launching" in present and _resend_due()):
        launch_jobs()


def reply(job_id: int, answer: dict[str, Any]) -> None:
    """Push an answer to the client waiting on this job (``oarsub -r``)."""
    client = broker_redis()
    key = f"oar:reply:{job_id}"
    client.rpush(key, json.dumps(answer))
    client.expire(key, REPLY_TTL)


def client_waiting(job_id: int) -> bool:
    """Whether an ``oarsub`` is still waiting for this job's answer."""
    return bool(broker_redis().exists(f"oar:client:{job_id}"))


def answer_errors() -> None:
    with session_scope() as session:
        jobs = session.execute(select(Job.job_id, Job.message).where(Job.state == "toError")).all()
        moved = finish(session, [job_id for job_id, _ in jobs], "Error", expected=("toError",))
    for job_id, message in jobs:
        if job_id in moved:
            reply(job_id, {"status": "refused", "message": message or "BAD JOB"})


def answer_reservations() -> None:
    """Tell each waiting ``oarsub -r`` its start; frag the reservations nobody waits for.

    The client starts listening only once it has its job id, so a reservation
    younger than :data:`CLIENT_GRACE` without a listener is left for a later
    cycle rather than fragged.
    """
    with session_scope() as session:
        rows = session.execute(
            select(Job.job_id, Job.start_time, Job.submission_time).where(Job.state == "toAckReservation")
        ).all()
        for job_id, start, submitted in rows:
            if client_waiting(job_id):
                if set_state(session, [job_id], "Waiting", expected=("toAckReservation",)):
                    reply(job_id, {"status": "granted", "start": start})
            elif now() - float(submitted or 0) < CLIENT_GRACE:
                continue
            else:
                message = "reservation client could not be reached: the job is fragged"
                if finish(session, [job_id], "Error", expected=("toAckReservation",), message=message):
                    add_event(session, "CANNOT_NOTIFY_OARSUB", job_id, message)


def launch_jobs() -> None:
    with session_scope() as session:
        to_launch = list(session.scalars(_TO_LAUNCH))
        specs = start_launching(session, to_launch)
        launching = {spec["job_id"] for spec in specs}
        specs += build_specs(session, [job_id for job_id in _launches_to_resend(session) if job_id not in launching])
    send_launches(specs)


def start_launching(session: Session, job_ids: list[int]) -> list[dict[str, Any]]:
    """``toLaunch`` → ``Launching`` (a conditional update); the launch specs of the jobs that moved.

    The caller sends them with :func:`send_launches` once its transaction has
    committed, never before: a job is launched at most once.
    """
    return build_specs(session, set_state(session, job_ids, "Launching", expected=("toLaunch",)))


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
    launching = list(session.scalars(select(Job.job_id).where(Job.state == "Launching")))
    if not launching:
        return []
    pipe = broker_redis().pipeline(transaction=False)
    for job_id in launching:
        pipe.exists(f"oar:launch:{job_id}")
    return [job_id for job_id, sent in zip(launching, pipe.execute(), strict=True) if not sent]


def send_launch(spec: dict[str, Any]) -> None:
    """Send the launch task to the job's first node and remember when."""
    send_launches([spec])


def send_launches(specs: list[dict[str, Any]]) -> None:
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
    from oar_celery.client.wire import push

    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for spec in specs:
        by_node[spec["hosts"][0]].append(spec)
    pipe = broker_redis().pipeline(transaction=False)
    for host, node_specs in by_node.items():
        queue = node_queue(host)
        for spec in node_specs:
            pipe.set(f"oar:launch:{spec['job_id']}", "1", ex=LAUNCH_RESEND)
        push(pipe, "oar.node.launch_many", {"specs": node_specs}, queue, ignore_result=True)
    pipe.execute()
    for spec in specs:
        logger.info("job %s sent to %s", spec["job_id"], spec["hosts"][0])


#: The columns of ``jobs`` a launch spec needs (:func:`launch_spec`; its walltime comes from the moldable).
LAUNCH_COLUMNS = (
    "job_id", "job_user", "command", "launching_directory", "job_name", "stdout_file", "stderr_file",
    "job_env", "array_id", "array_index", "checkpoint", "checkpoint_signal", "project",
)


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


def _resolve(template: str | None, default: str, job: Any) -> str:
    path = (template or default).replace("%jobid%", str(job.job_id))
    path = path.replace("%jobname%", job.job_name or "")
    return path if os.path.isabs(path) else os.path.join(job.launching_directory, path)


def output_paths(job: Any) -> tuple[str, str]:
    """The job's stdout and stderr files: ``OAR.<name>.<id>.stdout`` unless ``-O``/``-E``."""
    stem = f"OAR.{job.job_name}.%jobid%" if job.job_name else "OAR.%jobid%"
    return (
        _resolve(job.stdout_file, f"{stem}.stdout", job),
        _resolve(job.stderr_file, f"{stem}.stderr", job),
    )


def build_specs(session: Session, job_ids: list[int]) -> list[dict[str, Any]]:
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
    return [
        launch_spec(jobs[job_id], hosts_of[job_id], types[job_id], jobs[job_id].moldable_walltime)
        for job_id in job_ids
        if hosts_of.get(job_id)
    ]


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


def launch_spec(job: Any, resources: list[LaunchResource], types: list[str], walltime: int | None) -> dict[str, Any]:
    """What the node gets: ``job`` has the :data:`LAUNCH_COLUMNS`, ``resources`` are :data:`LaunchResource` by id."""
    hosts = list(dict.fromkeys(resource[1] for resource in resources))
    lines = sorted((resource[1] for resource in resources), key=hosts.index)
    stdout, stderr = output_paths(job)
    walltime = walltime if walltime is not None else settings().default_walltime
    return {
        "job_id": job.job_id,
        "user": job.job_user,
        "command": job.command,
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
        **confinement_of(resources),
    }
