"""Admission: turning a submission request into rows in OAR's job tables.

The head re-parses everything the client sent (a client is never trusted to
have validated), applies the defaults, refuses what can never run, and
inserts the job with its moldable alternatives, resource groups, types and
dependencies in one transaction. Nothing is written for a refused request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import (
    Job,
    JobDependency,
    JobResourceDescription,
    JobResourceGroup,
    JobStateLog,
    JobType,
    MoldableJobDescription,
    Queue,
)
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.types import Moldable

KNOWN_TYPES = ("besteffort", "idempotent", "timesharing")
_TIMESHARING = re.compile(r"^timesharing=(user|\*),(name|\*)$")
_NOTIFY = re.compile(r"^(?:\[(?P<tags>[A-Z,]*)\])?(?P<method>mail|exec):(?P<target>.+)$", re.S)
NOTIFY_TAGS = ("RUNNING", "END", "ERROR", "INFO", "SUSPENDED", "RESUMING")


@dataclass
class Submission:
    """A checked request, ready to be inserted."""

    user: str
    command: str
    moldables: list[Moldable]
    queue: str
    directory: str
    request: dict[str, Any]
    types: list[str]
    dependencies: list[int]
    reservation_start: float | None
    commands: list[str]


def parse_types(types: Sequence[str]) -> list[str]:
    for kind in types:
        if kind in ("besteffort", "idempotent") or _TIMESHARING.match(kind):
            continue
        if kind.startswith("timesharing"):
            raise RequestError(f"bad timesharing type '{kind}' (use timesharing=user,* or timesharing=*,*)")
        raise RequestError(f"unknown job type '{kind}' (known: {', '.join(KNOWN_TYPES)})")
    return list(dict.fromkeys(types))


def parse_reservation(text: str, *, at: float) -> float:
    """``YYYY-MM-DD HH:MM[:SS]`` in local time, not in the past."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            start = datetime.strptime(text.strip(), pattern).timestamp()
            break
        except ValueError:
            continue
    else:
        raise RequestError(f"bad reservation date '{text}' (expected YYYY-MM-DD HH:MM:SS)")
    if start < at - 60:
        raise RequestError(f"reservation date '{text}' is in the past")
    return max(start, at)


def parse_notify(text: str | None) -> str | None:
    """OAR's ``[TAGS]mail:address`` or ``[TAGS]exec:/path/script args``."""
    if not text:
        return None
    match = _NOTIFY.match(text.strip())
    if match is None:
        raise RequestError(f"bad --notify '{text}' (expected mail:ADDRESS or exec:COMMAND)")
    tags = [t for t in (match.group("tags") or "").split(",") if t]
    unknown = [t for t in tags if t not in NOTIFY_TAGS]
    if unknown:
        raise RequestError(f"unknown --notify tag '{unknown[0]}' (known: {','.join(NOTIFY_TAGS)})")
    target = match.group("target").strip()
    if not target:
        raise RequestError(f"empty --notify {match.group('method')} target")
    if match.group("method") == "mail" and not re.fullmatch(r"[^@\s]+@[^@\s]+", target):
        raise RequestError(f"bad --notify mail address '{target}'")
    return text.strip()


def _array_commands(request: dict[str, Any], command: str) -> list[str]:
    params = request.get("array_params")
    if params:
        lines = [line.strip() for line in params if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise RequestError("the --array-param-file holds no parameter line")
        return [f"{command} {line}" for line in lines]
    count = int(request.get("array") or 1)
    if count < 1:
        raise RequestError("--array takes a positive number of jobs")
    return [command] * count


def check(session: Session, request: dict[str, Any], config: Settings) -> Submission:
    """Validate a request against the cluster; raise RequestError with one line."""
    from oar_celery.scheduler.request import parse_moldables

    user = str(request.get("user") or "")
    if not user:
        raise RequestError("the request names no user")
    if user == "root" and not config.allow_root_jobs:
        raise RequestError("jobs submitted by root are refused on this cluster")
    command = str(request.get("command") or "").strip()
    if not command:
        raise RequestError("no command given: an empty job is refused")
    directory = str(request.get("directory") or "")
    if not directory.startswith("/"):
        raise RequestError("the working directory must be an absolute path")
    queue = str(request.get("queue") or "")
    types = parse_types(request.get("types") or [])
    if not queue:
        queue = "besteffort" if "besteffort" in types else config.default_queue
    state = session.scalar(select(Queue.state).where(Queue.queue_name == queue))
    if state is None:
        raise RequestError(f"unknown queue '{queue}'")
    if state != "Active":
        raise RequestError(f"queue '{queue}' is not active")
    if queue == "besteffort" and "besteffort" not in types:
        types.append("besteffort")
    moldables = parse_moldables(
        list(request.get("resources") or ["/resource_id=1"]),
        default_walltime=config.default_walltime,
        hierarchy_labels=config.labels,
    )
    _check_checkpoint(request, moldables)
    parse_notify(request.get("notify"))
    dependencies = [int(d) for d in request.get("dependencies") or []]
    _check_dependencies(session, dependencies)
    reservation = request.get("reservation")
    start = parse_reservation(str(reservation), at=time.time()) if reservation else None
    from oar_celery.resources import check_against_cluster

    check_against_cluster(session, moldables, request.get("properties"), config)
    return Submission(
        user=user,
        command=command,
        moldables=moldables,
        queue=queue,
        directory=directory,
        request=request,
        types=types,
        dependencies=dependencies,
        reservation_start=start,
        commands=_array_commands(request, command),
    )


def _check_checkpoint(request: dict[str, Any], moldables: list[Moldable]) -> None:
    checkpoint = int(request.get("checkpoint") or 0)
    if checkpoint < 0:
        raise RequestError("--checkpoint takes a positive number of seconds")
    if checkpoint and any(m.walltime <= checkpoint for m in moldables):
        raise RequestError("--checkpoint must be shorter than the walltime")
    signal = request.get("signal")
    if signal is not None and not 1 <= int(signal) <= 64:
        raise RequestError(f"--signal {signal} is not a signal number")


def _check_dependencies(session: Session, dependencies: list[int]) -> None:
    if not dependencies:
        return
    known = set(session.scalars(select(Job.job_id).where(Job.job_id.in_(dependencies))))
    missing = [d for d in dependencies if d not in known]
    if missing:
        raise RequestError(f"job {missing[0]} named by -a does not exist")


def insert(session: Session, submission: Submission, *, at: float) -> list[int]:
    """Insert the job (or every job of an array); their ids."""
    request = submission.request
    state = "Hold" if request.get("hold") else "Waiting"
    job_ids: list[int] = []
    array_id = 0
    for index, command in enumerate(submission.commands, start=1):
        job = Job(
            job_name=request.get("name") or None,
            job_user=submission.user,
            command=command,
            state=state,
            queue_name=submission.queue,
            properties=request.get("properties") or None,
            launching_directory=submission.directory,
            submission_time=at,
            initial_request=request.get("initial_request") or "",
            notify=request.get("notify") or None,
            checkpoint=int(request.get("checkpoint") or 0),
            checkpoint_signal=int(request.get("signal") or 12),
            stdout_file=request.get("stdout") or None,
            stderr_file=request.get("stderr") or None,
            project=request.get("project") or "default",
            reservation="toSchedule" if submission.reservation_start else "None",
            start_time=submission.reservation_start or 0.0,
            array_id=array_id,
            array_index=index,
            job_env=json.dumps(request["env"]) if request.get("env") else None,
            resubmit_job_id=int(request.get("resubmit_job_id") or 0),
        )
        session.add(job)
        session.flush()
        if not array_id:
            array_id = job.array_id = job.job_id
        _insert_details(session, job.job_id, submission)
        session.add(JobStateLog(job_id=job.job_id, job_state=state, date_start=at))
        job_ids.append(job.job_id)
    return job_ids


def _insert_details(session: Session, job_id: int, submission: Submission) -> None:
    for moldable in submission.moldables:
        description = MoldableJobDescription(moldable_job_id=job_id, moldable_walltime=moldable.walltime)
        session.add(description)
        session.flush()
        for group in moldable.groups:
            row = JobResourceGroup(
                res_group_moldable_id=description.moldable_id, res_group_property=group.property_filter
            )
            session.add(row)
            session.flush()
            session.add_all(
                JobResourceDescription(
                    res_job_group_id=row.res_group_id,
                    res_job_resource_type=level.name,
                    res_job_value=-1 if level.count == "ALL" else -2 if level.count == "BEST" else int(level.count),
                    res_job_order=order,
                )
                for order, level in enumerate(group.levels)
            )
    session.add_all(JobType(job_id=job_id, type=kind) for kind in submission.types)
    session.add_all(JobDependency(job_id=job_id, job_id_required=d) for d in submission.dependencies)
