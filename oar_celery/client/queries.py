"""Read-only queries behind oarstat and oarnodes.

Users read the database directly, as OAR's commands do. Every listing costs
one query per table whatever the number of jobs: the selected jobs become a
sub-select that the other tables are filtered with, never a query per job
nor a ten-thousand-item ``IN`` list. Rows come back as plain dicts so that
the formatting stays pure and testable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import column, func, literal_column, or_, select, table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from oar_celery.client.bare_reads import sqlite_exists
from oar_celery.client.errors import ClientError, reason
from oar_celery.config import mask, settings
from oar_celery.db.models import (
    CURRENT_STATES,
    Accounting,
    AssignedResource,
    EventLog,
    EventLogHostname,
    GanttJobPrediction,
    Job,
    JobDependency,
    JobResourceDescription,
    JobResourceGroup,
    JobStateLog,
    JobType,
    MoldableJobDescription,
    Resource,
)

#: ``jobs`` columns and the names oarstat shows them under (OAR3's JSON keys).
JOB_COLUMNS = {
    "id": Job.job_id,
    "name": Job.job_name,
    "owner": Job.job_user,
    "state": Job.state,
    "queue": Job.queue_name,
    "command": Job.command,
    "submission_time": Job.submission_time,
    "start_time": Job.start_time,
    "stop_time": Job.stop_time,
    "exit_code": Job.exit_code,
    "message": Job.message,
    "scheduler_info": Job.scheduler_info,
    "array_id": Job.array_id,
    "array_index": Job.array_index,
    "project": Job.project,
    "launching_directory": Job.launching_directory,
    "stdout_file": Job.stdout_file,
    "stderr_file": Job.stderr_file,
    "job_type": Job.job_type,
    "properties": Job.properties,
    "reservation": Job.reservation,
    "initial_request": Job.initial_request,
    "resubmit_job_id": Job.resubmit_job_id,
    "checkpoint": Job.checkpoint,
    "signal": Job.checkpoint_signal,
    "notify": Job.notify,
    "suspended": Job.suspended,
    "assigned_moldable_job": Job.assigned_moldable_job,
    "env": Job.job_env,
    "info_type": Job.info_type,
    "group": Job.job_group,
    "last_karma": Job.last_karma,
}
#: OAR stores ``ALL`` and ``BEST`` counts as these values.
SPECIAL_COUNTS = {-1: "ALL", -2: "BEST"}
HOST_EVENTS_LIMIT = 30


def database_text() -> str:
    return mask(settings().database)


@contextmanager
def reading() -> Iterator[Session]:
    """A session for reading, with connection failures turned into one line."""
    from oar_celery.db.session import session_scope

    url = settings().database
    if url.startswith("sqlite") and not sqlite_exists(url):
        raise ClientError(f"cannot reach the database at {database_text()} (no such file)")
    try:
        with session_scope() as session:
            yield session
    except DBAPIError as exc:
        raise ClientError(f"cannot reach the database at {database_text()} ({reason(exc.orig or exc)})") from exc
    except SQLAlchemyError as exc:
        raise ClientError(f"cannot read the database at {database_text()} ({reason(exc)})") from exc


# --------------------------------------------------------------------------- jobs


def job_selection(
    *,
    job_ids: Sequence[int] | None = None,
    user: str | None = None,
    array_id: int | None = None,
    current_only: bool = False,
    states: Sequence[str] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[Any]:
    """The ``WHERE`` conditions on ``jobs`` that pick the jobs to show.

    ``since`` and ``until`` keep the jobs whose life meets that window (OAR's
    ``from``/``to``): not ended before ``since``, submitted by ``until``.
    """
    conditions: list[Any] = []
    if job_ids is not None:
        conditions.append(Job.job_id.in_(list(job_ids)))
    if user is not None:
        conditions.append(Job.job_user == user)
    if array_id is not None:
        conditions.append(Job.array_id == array_id)
    if current_only:
        conditions.append(Job.state.in_(CURRENT_STATES))
    if states is not None:
        conditions.append(Job.state.in_(list(states)))
    if since is not None:
        conditions.append(or_(Job.stop_time >= since, Job.state.in_(CURRENT_STATES)))
    if until is not None:
        conditions.append(Job.submission_time <= until)
    return conditions


def list_jobs(session: Session, conditions: list[Any], *, full: bool = False) -> list[dict[str, Any]]:
    """The selected jobs ordered by id; ``full`` adds what ``-f``/``-J`` show."""
    labels = [col.label(name) for name, col in JOB_COLUMNS.items()]
    rows = session.execute(select(*labels).where(*conditions).order_by(Job.job_id)).mappings()
    jobs = [dict(row) for row in rows]
    if full and jobs:
        add_details(session, jobs, select(Job.job_id).where(*conditions))
    return jobs


def add_details(session: Session, jobs: list[dict[str, Any]], selected: Select[Any]) -> None:
    """Fill walltime, resources, types, dependencies, predictions, events and history."""
    moldables = _moldables(session, selected)
    groups = _wanted_groups(session, selected)
    assigned = _assigned(session, selected)
    types = grouped(session, select(JobType.job_id, JobType.type).where(JobType.job_id.in_(selected)))
    deps = grouped(
        session,
        select(JobDependency.job_id, JobDependency.job_id_required).where(JobDependency.job_id.in_(selected)),
    )
    predictions = _predictions(session, selected)
    events = _events(session, selected)
    history = _history(session, selected)
    for job in jobs:
        job_id = job["id"]
        job_moldables = moldables.get(job_id, [])
        start, predicted = predictions.get(job_id, (None, 0))
        job["walltime"] = _walltime(job_moldables, job["assigned_moldable_job"] or predicted)
        job["wanted_resources"] = _wanted_text(job_moldables, groups)
        resources = assigned.get(job_id, [])
        job["assigned_resources"] = sorted(rid for rid, _ in resources)
        job["assigned_network_address"] = sorted({host for _, host in resources if host})
        job["types"] = sorted(types.get(job_id, []))
        job["dependencies"] = sorted(deps.get(job_id, []))
        job["scheduled_start"] = start
        job["events"] = events.get(job_id, [])
        job["state_history"] = history.get(job_id, [])
        job["stdout_file"], job["stderr_file"] = _output_files(job)


def _output_files(job: dict[str, Any]) -> tuple[str, str]:
    """The files the job writes, named as the Runner names them (OAR3's oarstat -f shows them)."""
    from types import SimpleNamespace

    from oar_celery.protocol.output_files import output_paths

    return output_paths(SimpleNamespace(
        job_id=job["id"], job_name=job.get("name"), launching_directory=job.get("launching_directory"),
        stdout_file=job.get("stdout_file"), stderr_file=job.get("stderr_file"),
    ))


def grouped(session: Session, query: Select[Any] | Any) -> dict[int, list[Any]]:
    """The second column of a two-column query, listed by the first."""
    result: dict[int, list[Any]] = defaultdict(list)
    for key, value in session.execute(query):
        result[key].append(value)
    return result


def _moldables(session: Session, selected: Select[Any]) -> dict[int, list[tuple[int, int]]]:
    """(moldable id, walltime) of each job, in submission order."""
    query = (
        select(
            MoldableJobDescription.moldable_job_id,
            MoldableJobDescription.moldable_id,
            MoldableJobDescription.moldable_walltime,
        )
        .where(MoldableJobDescription.moldable_job_id.in_(selected))
        .order_by(MoldableJobDescription.moldable_id)
    )
    result: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, moldable_id, walltime in session.execute(query):
        result[job_id].append((moldable_id, walltime))
    return result


def _walltime(moldables: list[tuple[int, int]], assigned: int) -> int | None:
    """The walltime of the moldable the job got, else of its first one."""
    for moldable_id, walltime in moldables:
        if moldable_id == assigned:
            return walltime
    return moldables[0][1] if moldables else None


def _wanted_groups(session: Session, selected: Select[Any]) -> dict[int, list[tuple[str | None, list[str]]]]:
    """Per moldable id: its groups as (property filter, ["level=count", ...])."""
    query = (
        select(
            JobResourceGroup.res_group_moldable_id,
            JobResourceGroup.res_group_id,
            JobResourceGroup.res_group_property,
            JobResourceDescription.res_job_resource_type,
            JobResourceDescription.res_job_value,
        )
        .join(
            MoldableJobDescription,
            MoldableJobDescription.moldable_id == JobResourceGroup.res_group_moldable_id,
        )
        .outerjoin(JobResourceDescription, JobResourceDescription.res_job_group_id == JobResourceGroup.res_group_id)
        .where(MoldableJobDescription.moldable_job_id.in_(selected))
        .order_by(JobResourceGroup.res_group_id, JobResourceDescription.res_job_order)
    )
    by_group: dict[int, tuple[int, str | None, list[str]]] = {}
    for moldable_id, group_id, prop, level, value in session.execute(query):
        entry = by_group.setdefault(group_id, (moldable_id, prop, []))
        if level is not None:
            entry[2].append(f"{level}={SPECIAL_COUNTS.get(value, value)}")
    result: dict[int, list[tuple[str | None, list[str]]]] = defaultdict(list)
    for moldable_id, prop, levels in by_group.values():
        result[moldable_id].append((prop, levels))
    return result


def _wanted_text(moldables: list[tuple[int, int]], groups: dict[int, list[tuple[str | None, list[str]]]]) -> str:
    """OAR's ``wanted_resources``: ``-l "{filter}/nodes=1/core=2,walltime=1:00:00"`` per moldable."""
    from oar_celery.scheduler.walltime import format_walltime as duration

    texts = []
    for moldable_id, walltime in moldables:
        parts = []
        for prop, levels in groups.get(moldable_id, []):
            prefix = f"{{{prop}}}" if prop else ""
            parts.append(prefix + "".join(f"/{level}" for level in levels))
        texts.append(f'-l "{"+".join(parts)},walltime={duration(walltime)}"')
    return " ".join(texts)


def _assigned(session: Session, selected: Select[Any]) -> dict[int, list[tuple[int, str | None]]]:
    query = (
        select(Job.job_id, AssignedResource.resource_id, Resource.network_address)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .outerjoin(Resource, Resource.resource_id == AssignedResource.resource_id)
        .where(Job.job_id.in_(selected))
    )
    result: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    for job_id, resource_id, host in session.execute(query):
        result[job_id].append((resource_id, host))
    return result


def _predictions(session: Session, selected: Select[Any]) -> dict[int, tuple[float, int]]:
    """The earliest predicted start of each job, and the moldable it is predicted for."""
    query = (
        select(
            MoldableJobDescription.moldable_job_id, GanttJobPrediction.start_time, MoldableJobDescription.moldable_id
        )
        .join(GanttJobPrediction, GanttJobPrediction.moldable_job_id == MoldableJobDescription.moldable_id)
        .where(MoldableJobDescription.moldable_job_id.in_(selected))
    )
    result: dict[int, tuple[float, int]] = {}
    for job_id, start, moldable_id in session.execute(query):
        result[job_id] = min((start, moldable_id), result.get(job_id, (start, moldable_id)))
    return result


def _events(session: Session, selected: Select[Any]) -> dict[int, list[dict[str, Any]]]:
    query = (
        select(EventLog.job_id, EventLog.event_id, EventLog.type, EventLog.date, EventLog.description)
        .where(EventLog.job_id.in_(selected))
        .order_by(EventLog.date, EventLog.event_id)
    )
    result: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for job_id, event_id, kind, date, description in session.execute(query):
        result[job_id].append({"event_id": event_id, "type": kind, "date": date, "description": description})
    return result


def _history(session: Session, selected: Select[Any]) -> dict[int, list[dict[str, Any]]]:
    query = (
        select(JobStateLog.job_id, JobStateLog.job_state, JobStateLog.date_start, JobStateLog.date_stop)
        .where(JobStateLog.job_id.in_(selected))
        .order_by(JobStateLog.date_start, JobStateLog.job_state_log_id)
    )
    result: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for job_id, state, start, stop in session.execute(query):
        result[job_id].append({"state": state, "date_start": start, "date_stop": stop})
    return result


def job_events(session: Session, job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The events of the given jobs (``oarstat -e``)."""
    return _events(session, select(Job.job_id).where(Job.job_id.in_(list(job_ids))))


def job_resources(session: Session, job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Every column of the resources each job holds or held (``oarstat -p``), by resource id."""
    pairs = session.execute(
        select(Job.job_id, AssignedResource.resource_id)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .where(Job.job_id.in_(list(job_ids)))
        .order_by(Job.job_id, AssignedResource.resource_id)
    ).all()
    rows = {r["resource_id"]: r for r in list_resources(session, resource_ids={rid for _, rid in pairs})}
    result: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for job_id, resource_id in pairs:
        if resource_id in rows:
            result[job_id].append(rows[resource_id])
    return result


def job_sql_row(job: dict[str, Any]) -> dict[str, Any]:
    """A listed job under the ``jobs`` table's own column names (what ``--sql`` filters name)."""
    return {col.name: job.get(key) for key, col in JOB_COLUMNS.items()}


# ---------------------------------------------------------------------- resources


def list_resources(
    session: Session, *, hosts: Iterable[str] | None = None, resource_ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Every column of the selected resources, properties added by admins included."""
    resources = table("resources", column("resource_id"), column("network_address"))
    query: Select[Any] = select(literal_column("*")).select_from(resources)
    if hosts is not None:
        query = query.where(resources.c.network_address.in_(list(hosts)))
    if resource_ids is not None:
        query = query.where(resources.c.resource_id.in_(list(resource_ids)))
    query = query.order_by(resources.c.network_address, resources.c.resource_id)
    return [dict(row) for row in session.execute(query).mappings()]


def resource_jobs(session: Session, resource_ids: Iterable[int] | None = None) -> dict[int, list[int]]:
    """The unfinished jobs holding each resource (``oarnodes`` shows them)."""
    query = (
        select(AssignedResource.resource_id, Job.job_id)
        .join(Job, Job.assigned_moldable_job == AssignedResource.moldable_job_id)
        .where(Job.state.in_(CURRENT_STATES), Job.state != "Waiting")
        .order_by(Job.job_id)
    )
    if resource_ids is not None:
        query = query.where(AssignedResource.resource_id.in_(list(resource_ids)))
    return dict(grouped(session, query))


def known_hosts(session: Session) -> list[str]:
    query = select(Resource.network_address).distinct().order_by(Resource.network_address)
    return [host for (host,) in session.execute(query)]


def host_events(
    session: Session, hosts: Sequence[str] | None, *, limit: int = HOST_EVENTS_LIMIT, since: float | None = None
) -> list[dict[str, Any]]:
    """The latest events that touched ``hosts`` (all hosts if ``None``), oldest first; ``since``: all from then."""
    query = select(
        EventLogHostname.hostname,
        EventLog.event_id,
        EventLog.type,
        EventLog.job_id,
        EventLog.date,
        EventLog.description,
    ).join(EventLog, EventLog.event_id == EventLogHostname.event_id)
    if hosts is not None:
        query = query.where(EventLogHostname.hostname.in_(list(hosts)))
    if since is not None:
        query = query.where(EventLog.date >= since)
    query = query.order_by(EventLog.date.desc(), EventLog.event_id.desc())
    query = query if since is not None else query.limit(limit)
    rows = [dict(row) for row in session.execute(query).mappings()]
    return rows[::-1]


def accounting_summary(
    session: Session, start: float, stop: float, user: str | None = None, *, by_project: bool = False
) -> dict[tuple[str, str], dict[str, int]]:
    """``oarstat --accounting``: ASKED and USED seconds per user (and project), first and last window, as OAR3."""
    key: list[Any] = [Accounting.accounting_user] + ([Accounting.accounting_project] if by_project else [])
    project_column = Accounting.accounting_project if by_project else literal_column("''")
    query = (
        select(Accounting.accounting_user, project_column, Accounting.consumption_type,
               func.sum(Accounting.consumption), func.min(Accounting.window_start), func.max(Accounting.window_stop))
        .where(Accounting.window_stop > start, Accounting.window_start < stop)
        .group_by(*key, Accounting.consumption_type)
        .order_by(*key)
    )
    if user:
        query = query.where(Accounting.accounting_user == user)
    found: dict[tuple[str, str], dict[str, int]] = {}
    for name, project, kind, total, first, last in session.execute(query):
        entry = found.setdefault((name, project), {"ASKED": 0, "USED": 0, "begin": int(first), "end": int(last)})
        entry[kind] = int(total)
        entry["begin"] = min(entry["begin"], int(first))
        entry["end"] = max(entry["end"], int(last))
    return found


def last_karmas(session: Session, user: str, before: float) -> dict[str, float]:
    """The karma of the user's last job started before ``before``, per project (``oarstat -u --accounting``)."""
    rows = session.execute(
        select(Job.project, Job.last_karma)
        .where(Job.job_user == user, Job.last_karma.is_not(None), Job.start_time > 0, Job.start_time < before)
        .order_by(Job.start_time)
    )
    return {project: float(karma) for project, karma in rows if karma is not None}


def submitted_jobs(session: Session, submission_ids: Sequence[str]) -> dict[str, list[int]]:
    """The jobs the head made for these client submission ids (those it never took are absent)."""
    import json

    from oar_celery.db.models import JobSubmission

    if not submission_ids:
        return {}
    rows = session.execute(
        select(JobSubmission.submission_id, JobSubmission.job_ids)
        .where(JobSubmission.submission_id.in_(list(submission_ids)))
    )
    return {submission_id: [int(i) for i in json.loads(job_ids)] for submission_id, job_ids in rows}
