"""Admission: turning a submission request into rows in OAR's job tables.

The head re-parses everything the client sent (a client is never trusted to
have validated), applies the defaults, refuses what can never run, and
inserts the job with its moldable alternatives, resource groups, types and
dependencies in one transaction. Nothing is written for a refused request.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.bulk import insert_returning, insert_rows
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
from oar_celery.head.lib import job_types, rulebook, rules
from oar_celery.head.lib.rules import Candidate
from oar_celery.protocol import notify_method
from oar_celery.protocol.messages import SubmitRequest
from oar_celery.protocol.states import JobState, ReservationState
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.types import Moldable

logger = logging.getLogger(__name__)
#: OAR3's rule 15: the two words of ``timesharing`` in either order.
_TIMESHARING = re.compile(r"^timesharing=(?:(?:\*|user),(?:\*|name)|(?:\*|name),(?:\*|user))$")


@dataclass
class Submission:
    """A checked request, ready to be inserted."""

    user: str
    command: str
    moldables: list[Moldable]
    queue: str
    directory: str
    request: SubmitRequest
    types: list[str]
    dependencies: list[int]
    reservation_start: float | None
    commands: list[str]


def parse_types(types: Sequence[str]) -> list[str]:
    """The ``-t`` types without blanks and repeats; a malformed timesharing is refused (whatever the rules)."""
    kinds = [str(kind).strip() for kind in types]
    for kind in kinds:
        if not kind:
            raise RequestError("empty job type (-t)")
        if kind.startswith("timesharing") and not _TIMESHARING.match(kind):
            raise RequestError(f"bad timesharing type '{kind}' (use timesharing=user,* or timesharing=*,*)")
    return list(dict.fromkeys(kinds))


def parse_reservation(text: str, *, at: float) -> float:
    """``YYYY-MM-DD HH:MM[:SS]`` in local time."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            start = datetime.strptime(text.strip(), pattern).timestamp()
            break
        except ValueError:
            continue
    else:
        raise RequestError(f"bad reservation date '{text}' (expected YYYY-MM-DD HH:MM:SS)")
    del at  # a start in the past is judged with the walltime (rules.reservation_start)
    return start


def parse_notify(text: str | None) -> str | None:
    """OAR's ``[TAGS]mail:address`` or ``[TAGS]exec:/path/script args``, checked."""
    if not text:
        return None
    notify_method.parse_notify(text)
    return text.strip()


def _array_commands(request: SubmitRequest, command: str) -> list[str]:
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


def check(session: Session, request: SubmitRequest, config: Settings) -> Submission:
    """Validate a request against the cluster; raise RequestError with one line."""
    from oar_celery.scheduler.request import parse_moldables

    user = str(request.get("user") or "")
    if not user:
        raise RequestError("the request names no user")
    if user == "root" and not config.allow_root_jobs:
        raise RequestError("jobs submitted by root are refused on this cluster")
    command = str(request.get("command") or "").strip()
    if request.get("interactive") and command:
        raise RequestError("an interactive job (-I) takes no command")
    if not command and not request.get("reservation") and not request.get("interactive"):
        raise RequestError("no command given: an empty job is refused (only a reservation may have none)")
    directory = str(request.get("directory") or "")
    if not directory.startswith("/"):
        raise RequestError("the working directory must be an absolute path")
    types = parse_types(request.get("types") or [])
    moldables = parse_moldables(
        list(request.get("resources") or ["/resource_id=1"]),
        default_walltime=0,
        hierarchy_labels=config.labels,
    )
    reservation = request.get("reservation")
    start = parse_reservation(str(reservation), at=time.time()) if reservation else None
    job = Candidate(
        user=user, queue=str(request.get("queue") or "") or None, types=types,
        properties=request.get("properties") or None, moldables=moldables, reservation=start,
        project=request.get("project") or None, name=request.get("name") or None, command=command,
        session=session, config=config,
    )
    rules.apply(rulebook.active_rules(session, config), job)
    for note in job.notes:
        logger.info("job of %s: %s", user, note)
    if request.get("interactive") and request.get("array"):
        raise RequestError("an interactive job cannot be an array job")
    if not job.command.strip() and start is None and not request.get("interactive"):
        raise RequestError("no command given: an empty job is refused")
    if any(m.walltime <= 0 for m in job.moldables):
        raise RequestError("a walltime is required on this cluster (-l ...,walltime=H:MM:SS)")
    queue, types, moldables = job.queue or config.default_queue, list(dict.fromkeys(job.types)), job.moldables
    _check_queue(session, queue)
    job_types.check(session, user, types, config)
    request = cast(SubmitRequest, {**request, "properties": job.properties, "project": job.project, "name": job.name})
    _check_checkpoint(request, moldables)
    parse_notify(request.get("notify"))
    dependencies = [int(d) for d in request.get("dependencies") or []]
    _check_dependencies(session, dependencies)
    if start is not None:
        start = rules.reservation_start(start, [m.walltime for m in moldables], at=time.time())
    from oar_celery.head.lib.resources import check_against_cluster

    check_against_cluster(session, moldables, job.properties, config)
    return Submission(
        user=user,
        command=job.command,
        moldables=moldables,
        queue=queue,
        directory=directory,
        request=request,
        types=types,
        dependencies=dependencies,
        reservation_start=job.reservation,
        commands=_array_commands(request, job.command),
    )


def _check_queue(session: Session, queue: str) -> None:
    state = session.scalar(select(Queue.state).where(Queue.queue_name == queue))
    if state is None:
        raise RequestError(f"unknown queue '{queue}'")
    # OAR3: a disabled queue still takes submissions; its jobs wait until it is active again


def _check_checkpoint(request: SubmitRequest, moldables: list[Moldable]) -> None:
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
    return insert_many(session, [submission], at=at)[0]


def insert_many(session: Session, submissions: Sequence[Submission], *, at: float) -> list[list[int]]:
    """Insert every job of several checked submissions with a few bulk statements; ids per submission.

    One ``INSERT ... RETURNING`` per table whatever the number of jobs (SQLAlchemy's
    insertmanyvalues, ids returned in parameter order), instead of a flush per row:
    this is what lets a batch or an array of thousands of jobs go in within a second.
    """
    jobs = [(submission, index, command) for submission in submissions
            for index, command in enumerate(submission.commands, start=1)]
    if not jobs:
        return [[] for _ in submissions]
    ids = _returning(session, Job, Job.job_id, [_job_row(s, i, c, at) for s, i, c in jobs])
    per_submission: list[list[int]] = []
    position = 0
    for submission in submissions:
        per_submission.append(ids[position:position + len(submission.commands)])
        position += len(submission.commands)
    _set_array_ids(session, per_submission)
    _insert_details_many(session, [(job_id, s) for job_id, (s, _, _) in zip(ids, jobs, strict=True)])
    insert_rows(
        session, JobStateLog.__table__,
        [{"job_id": job_id, "job_state": _state_of(s), "date_start": at, "date_stop": 0.0}
         for job_id, (s, _, _) in zip(ids, jobs, strict=True)],
    )
    return per_submission


def _state_of(submission: Submission) -> str:
    return JobState.HOLD if submission.request.get("hold") else JobState.WAITING


def _job_row(submission: Submission, index: int, command: str, at: float) -> dict[str, Any]:
    request = submission.request
    return {
        "job_name": request.get("name") or None,
        "job_user": submission.user,
        "command": command,
        "job_type": "INTERACTIVE" if request.get("interactive") or not command else "PASSIVE",
        "state": _state_of(submission),
        "queue_name": submission.queue,
        "properties": request.get("properties") or None,
        "launching_directory": submission.directory,
        "submission_time": at,
        "initial_request": request.get("initial_request") or "",
        "notify": request.get("notify") or None,
        "checkpoint": int(request.get("checkpoint") or 0),
        "checkpoint_signal": int(request.get("signal") or 12),
        "stdout_file": request.get("stdout") or None,
        "stderr_file": request.get("stderr") or None,
        "project": request.get("project") or "default",
        "reservation": ReservationState.TO_SCHEDULE if submission.reservation_start else "None",
        "start_time": submission.reservation_start or 0.0,
        "array_id": 0,
        "array_index": index,
        "job_env": json.dumps(request["env"]) if request.get("env") else None,
        "resubmit_job_id": int(request.get("resubmit_job_id") or 0),
    }


def _returning(session: Session, model: type, column: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk insert ``rows``; the generated keys in the order of the rows."""
    table: Any = model.__table__  # type: ignore[attr-defined]
    return insert_returning(session, table, table.c[column.key], rows)


def _set_array_ids(session: Session, per_submission: list[list[int]]) -> None:
    """OAR's array id: the first job id of the submission (a single job is its own array)."""
    singles = [ids[0] for ids in per_submission if len(ids) == 1]
    if singles:
        session.execute(
            update(Job).where(Job.job_id.in_(singles)).values(array_id=Job.job_id)
            .execution_options(synchronize_session=False)
        )
    for ids in per_submission:
        if len(ids) > 1:
            session.execute(
                update(Job).where(Job.job_id.in_(ids)).values(array_id=ids[0])
                .execution_options(synchronize_session=False)
            )


def _insert_details_many(session: Session, jobs: list[tuple[int, Submission]]) -> None:
    """Moldables, their resource groups and levels, types and dependencies of many jobs."""
    moldables = [(job_id, m) for job_id, s in jobs for m in s.moldables]
    moldable_ids = _returning(
        session, MoldableJobDescription, MoldableJobDescription.moldable_id,
        [{"moldable_job_id": job_id, "moldable_walltime": m.walltime, "moldable_index": "CURRENT"}
         for job_id, m in moldables],
    )
    groups = [(moldable_id, g) for moldable_id, (_, m) in zip(moldable_ids, moldables, strict=True) for g in m.groups]
    group_ids = _returning(
        session, JobResourceGroup, JobResourceGroup.res_group_id,
        [{"res_group_moldable_id": moldable_id, "res_group_property": g.property_filter, "res_group_index": "CURRENT"}
         for moldable_id, g in groups],
    )
    levels = [
        {"res_job_group_id": group_id, "res_job_resource_type": level.name, "res_job_value": _level_value(level.count),
         "res_job_order": order, "res_job_index": "CURRENT"}
        for group_id, (_, g) in zip(group_ids, groups, strict=True)
        for order, level in enumerate(g.levels)
    ]
    insert_rows(session, JobResourceDescription.__table__, levels)
    types = [{"job_id": job_id, "type": kind, "types_index": "CURRENT"} for job_id, s in jobs for kind in s.types]
    insert_rows(session, JobType.__table__, types)
    dependencies = [
        {"job_id": job_id, "job_id_required": d, "job_dependency_index": "CURRENT"}
        for job_id, s in jobs for d in s.dependencies
    ]
    insert_rows(session, JobDependency.__table__, dependencies)


def _level_value(count: Any) -> int:
    return -1 if count == "ALL" else -2 if count == "BEST" else int(count)
