"""What the REST API reads, page by page, in OAR3's field names.

The API reads the database as ``oarstat`` and ``oarnodes`` do (the selection
of :func:`oar_celery.client.queries.job_selection`, the details of
:func:`~oar_celery.client.queries.add_details`), but a page at a time: one
``LIMIT``/``OFFSET`` query and one count per listing, and the details of the
page's jobs only, whatever the number of jobs in the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import column, distinct, func, literal_column, select, table
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from oar_celery.client import queries
from oar_celery.db.models import (
    AssignedResource,
    EventLog,
    GanttJobPrediction,
    GanttJobResource,
    Job,
    JobResourceDescription,
    JobResourceGroup,
    JobType,
    MoldableJobDescription,
    Resource,
)
from oar_celery.protocol.states import JobState

#: OAR3's names of the ``jobs`` columns (its model's attributes).
JOB_FIELDS = {
    "id": Job.job_id,
    "array_id": Job.array_id,
    "array_index": Job.array_index,
    "initial_request": Job.initial_request,
    "name": Job.job_name,
    "env": Job.job_env,
    "type": Job.job_type,
    "info_type": Job.info_type,
    "state": Job.state,
    "reservation": Job.reservation,
    "message": Job.message,
    "scheduler_info": Job.scheduler_info,
    "user": Job.job_user,
    "project": Job.project,
    "group": Job.job_group,
    "command": Job.command,
    "exit_code": Job.exit_code,
    "queue_name": Job.queue_name,
    "properties": Job.properties,
    "launching_directory": Job.launching_directory,
    "submission_time": Job.submission_time,
    "start_time": Job.start_time,
    "stop_time": Job.stop_time,
    "notify": Job.notify,
    "assigned_moldable_job": Job.assigned_moldable_job,
    "checkpoint": Job.checkpoint,
    "checkpoint_signal": Job.checkpoint_signal,
    "stdout_file": Job.stdout_file,
    "stderr_file": Job.stderr_file,
    "resubmit_job_id": Job.resubmit_job_id,
    "suspended": Job.suspended,
}
#: What OAR3 lists of a job without ``details``.
SHORT_FIELDS = ("id", "name", "queue_name", "user", "submission_time", "state", "exit_code")
#: Fields only the job's owner (and admins) see.
PRIVATE_FIELDS = frozenset(
    {"command", "initial_request", "env", "notify", "launching_directory", "stdout_file", "stderr_file"}
)
TIME_FIELDS = (
    "submission_time", "start_time", "stop_time", "scheduled_start", "date",
    "expiry_date", "last_job_date", "available_upto", "last_available_upto", "state_since",
)
#: OAR3's listing without ``states``: the jobs still in the system.
CURRENT_STATES = (
    JobState.FINISHING, JobState.RUNNING, JobState.RESUMING, JobState.SUSPENDED, JobState.LAUNCHING,
    JobState.TO_LAUNCH, JobState.WAITING, JobState.HOLD, JobState.TO_ACK_RESERVATION,
)
#: OAR3's short listing of a resource.
SHORT_RESOURCE_FIELDS = ("id", "state", "available_upto", "network_address")
#: Job states in which a resource counts as busy (OAR3's ``/resources/busy``).
BUSY_STATES = (JobState.TO_LAUNCH, JobState.RUNNING, JobState.RESUMING)


def page(session: Session, query: Any, count: Any, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of ``query`` and the number of rows of the whole listing (counted only when it matters)."""
    rows: list[dict[str, Any]] = []
    if limit:
        result = session.execute(query.limit(limit).offset(offset))
        names = tuple(result.keys())  # rows zipped with their names: RowMapping access costs a third more
        rows = [dict(zip(names, row, strict=True)) for row in result]
    total = offset + len(rows) if rows and len(rows) < limit else int(session.scalar(count) or 0)
    return rows, total


def _whole_seconds(item: dict[str, Any]) -> dict[str, Any]:
    """OAR3 gives times as whole seconds since the epoch."""
    for name in TIME_FIELDS:
        value = item.get(name)
        if isinstance(value, float):
            item[name] = int(value)
    return item


# --------------------------------------------------------------------------------- jobs


def job_conditions(
    *,
    user: str | None,
    states: Sequence[str],
    job_ids: Sequence[int],
    array_id: int | None,
    since: float | None,
    until: float | None,
) -> list[Any]:
    """OAR3's selection: the given states, else the current jobs (finished ones too in a time window)."""
    chosen: Sequence[str] | None = list(states) or None
    if chosen is None and not job_ids and array_id is None:
        window = since is not None or until is not None
        chosen = [*CURRENT_STATES, *((JobState.TERMINATED, JobState.ERROR) if window else ())]
    return queries.job_selection(
        job_ids=list(job_ids) or None, user=user, array_id=array_id, states=chosen, since=since, until=until
    )


def jobs_page(
    session: Session, conditions: list[Any], *, details: bool, offset: int, limit: int, every_field: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """A page of jobs ordered by id in OAR3's fields: all of them and what ``details`` adds, or the short list
    (``every_field``: all of them without the details)."""
    names = list(JOB_FIELDS) if details or every_field else list(SHORT_FIELDS)
    query = select(*(JOB_FIELDS[name].label(name) for name in names)).where(*conditions).order_by(Job.job_id)
    count = select(func.count()).select_from(Job).where(*conditions)
    jobs, total = page(session, query, count, offset, limit)
    if details and jobs:
        add_details(session, jobs)
    return [_whole_seconds(job) for job in jobs], total


def one_job(session: Session, job_id: int, *, details: bool) -> dict[str, Any] | None:
    jobs, _ = jobs_page(session, [Job.job_id == job_id], details=details, offset=0, limit=1, every_field=True)
    return jobs[0] if jobs else None


def add_details(session: Session, jobs: list[dict[str, Any]]) -> None:
    """oarstat's details (:func:`queries.add_details`) in OAR3's shapes."""
    selected = select(Job.job_id).where(Job.job_id.in_([job["id"] for job in jobs]))
    queries.add_details(session, jobs, selected)
    actual = actual_requests(session, selected)
    for job in jobs:
        job["types"] = job_types(job["types"])
        job["resources"] = [{"id": rid} for rid in job.pop("assigned_resources")]
        job["nodes"] = [{"network_address": host} for host in job.pop("assigned_network_address")]
        job["events"] = [_event(job["id"], event) for event in job["events"]]
        job.pop("state_history", None)
        if job["id"] in actual:
            job["actual_resources"] = actual[job["id"]]


def _event(job_id: int, event: dict[str, Any]) -> dict[str, Any]:
    return _whole_seconds({"id": event["event_id"], "job_id": job_id, "type": event["type"], "date": event["date"],
                           "description": event["description"]})


def job_types(types: Iterable[str]) -> dict[str, Any]:
    """OAR3's ``types``: ``{"besteffort": true, "timesharing": "user,*"}``."""
    parsed: dict[str, Any] = {}
    for kind in types:
        name, sep, value = kind.partition("=")
        parsed[name.strip()] = value.strip() if sep else True
    return parsed


def actual_requests(session: Session, selected: Select[Any]) -> dict[int, str]:
    """OAR3's ``actual_resources``: the request of the moldable a job got, ``{filter}/level=n/...``."""
    query = (
        select(Job.job_id, JobResourceGroup.res_group_property, JobResourceDescription.res_job_resource_type,
               JobResourceDescription.res_job_value)
        .join(JobResourceGroup, JobResourceGroup.res_group_moldable_id == Job.assigned_moldable_job)
        .join(JobResourceDescription, JobResourceDescription.res_job_group_id == JobResourceGroup.res_group_id)
        .where(Job.job_id.in_(selected))
        .order_by(Job.job_id, JobResourceGroup.res_group_id, JobResourceDescription.res_job_order)
    )
    texts: dict[int, str] = defaultdict(str)
    last_filter: dict[int, str | None] = {}
    for job_id, prop, level, value in session.execute(query):
        if prop and last_filter.get(job_id) != prop:
            texts[job_id] += ("+" if texts[job_id] else "") + "{" + prop + "}"
        last_filter[job_id] = prop
        texts[job_id] += f"/{level}={queries.SPECIAL_COUNTS.get(value, value)}"
    return dict(texts)


def job_owner(session: Session, job_id: int) -> str | None:
    return session.scalar(select(Job.job_user).where(Job.job_id == job_id))


def job_resources(session: Session, job_id: int, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The resources a job holds (``assigned``), or those the scheduler plans for it (``reserved``)."""
    assigned: Any = (
        select(Resource.resource_id.label("id"), Resource.network_address,
               literal_column("'assigned'").label("status"))
        .join(AssignedResource, AssignedResource.resource_id == Resource.resource_id)
        .join(Job, Job.assigned_moldable_job == AssignedResource.moldable_job_id)
        .where(Job.job_id == job_id)
    )
    planned: Any = (
        select(Resource.resource_id.label("id"), Resource.network_address,
               literal_column("'reserved'").label("status"))
        .join(GanttJobResource, GanttJobResource.resource_id == Resource.resource_id)
        .join(MoldableJobDescription, MoldableJobDescription.moldable_id == GanttJobResource.moldable_job_id)
        .join(Job, Job.job_id == MoldableJobDescription.moldable_job_id)
        .where(Job.job_id == job_id, Job.assigned_moldable_job == 0)
    )
    union = assigned.union_all(planned).subquery()
    query = select(union).order_by(union.c.id)
    return page(session, query, select(func.count()).select_from(union), offset, limit)


def job_nodes(session: Session, job_id: int, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The distinct hosts of :func:`job_resources`."""
    resources, _ = job_resources(session, job_id, 0, 1_000_000)
    hosts: dict[str, str] = {}
    for resource in resources:
        hosts.setdefault(resource["network_address"], resource["status"])
    items = [{"network_address": host, "status": status} for host, status in sorted(hosts.items())]
    return items[offset:offset + limit], len(items)


def job_events(session: Session, job_id: int, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    query = (
        select(EventLog.event_id.label("id"), EventLog.type, EventLog.job_id, EventLog.date, EventLog.description,
               EventLog.to_check)
        .where(EventLog.job_id == job_id)
        .order_by(EventLog.date, EventLog.event_id)
    )
    count = select(func.count()).select_from(EventLog).where(EventLog.job_id == job_id)
    events, total = page(session, query, count, offset, limit)
    return [_whole_seconds(event) for event in events], total


# ---------------------------------------------------------------------------- resources


def _resources_table() -> Any:
    return table("resources", column("resource_id"), column("network_address"))


def resources_page(
    session: Session, *, detailed: bool, network_address: str | None, offset: int, limit: int,
    resource_id: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of resources ordered by id: every column (properties included) or OAR3's short list."""
    resources = _resources_table()
    conditions = []
    if network_address is not None:
        conditions.append(resources.c.network_address == network_address)
    if resource_id is not None:
        conditions.append(resources.c.resource_id == resource_id)
    query: Any = select(literal_column("*")).select_from(resources).where(*conditions).order_by(resources.c.resource_id)
    count = select(func.count()).select_from(resources).where(*conditions)
    rows, total = page(session, query, count, offset, limit)
    items = []
    for row in rows:
        item = _whole_seconds({"id": row.pop("resource_id"), **row})
        items.append({name: item.get(name) for name in SHORT_RESOURCE_FIELDS} if not detailed else item)
    return items, total


def one_resource(session: Session, resource_id: int) -> dict[str, Any] | None:
    items, _ = resources_page(session, detailed=True, network_address=None, offset=0, limit=1,
                              resource_id=resource_id)
    return items[0] if items else None


def resource_jobs(session: Session, resource_id: int, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The jobs given this resource, oldest first (OAR3's ``/resources/<id>/jobs``)."""
    held = (
        select(Job.job_id)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .where(AssignedResource.resource_id == resource_id)
    )
    return jobs_page(session, [Job.job_id.in_(held)], details=False, offset=offset, limit=limit)


def busy_resources(session: Session) -> int:
    active = select(Job.assigned_moldable_job).where(Job.state.in_(BUSY_STATES))
    query = select(func.count(distinct(AssignedResource.resource_id))).where(
        AssignedResource.moldable_job_id.in_(active)
    )
    return int(session.scalar(query) or 0)


def resource_ids_of(session: Session, host: str) -> list[int]:
    return list(session.scalars(select(Resource.resource_id).where(Resource.network_address == host)
                                .order_by(Resource.resource_id)))


# ------------------------------------------------------------------------------- gantt


def gantt(session: Session, since: float, until: float) -> dict[str, Any]:
    """What the Gantt and the node grid draw: every resource, and the jobs that meet ``[since, until]``.

    A started job comes with the resources it holds, its start and its end (the
    walltime's end while it runs); a waiting one with the scheduler's prediction
    (``predicted``). One query per table, whatever the number of resources;
    finished jobs are found through the stop-time index.
    """
    resources = [
        {"id": rid, "host": host, "state": state, "next_state": nxt, "cpu": cpu, "core": core}
        for rid, host, state, nxt, cpu, core in session.execute(
            select(Resource.resource_id, Resource.network_address, Resource.state, Resource.next_state,
                   Resource.cpu, Resource.core).order_by(Resource.network_address, Resource.resource_id))
    ]
    shown = select(Job.job_id).where(Job.state.in_(CURRENT_STATES)).union(
        select(Job.job_id).where(Job.stop_time >= since, Job.start_time <= until, Job.start_time > 0)
    )
    ids = select(shown.subquery().c.job_id)
    moldables = {m: (j, w) for m, j, w in session.execute(
        select(MoldableJobDescription.moldable_id, MoldableJobDescription.moldable_job_id,
               MoldableJobDescription.moldable_walltime).where(MoldableJobDescription.moldable_job_id.in_(ids)))}
    predicted = dict(session.execute(
        select(GanttJobPrediction.moldable_job_id, GanttJobPrediction.start_time)
        .where(GanttJobPrediction.moldable_job_id.in_(list(moldables)))).all())
    planned = queries.grouped(session, select(GanttJobResource.moldable_job_id, GanttJobResource.resource_id)
                              .where(GanttJobResource.moldable_job_id.in_(list(predicted))))
    assigned = queries.grouped(session, select(Job.job_id, AssignedResource.resource_id).join(
        AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job).where(Job.job_id.in_(ids)))
    types = queries.grouped(session, select(JobType.job_id, JobType.type).where(JobType.job_id.in_(ids)))
    plans: dict[int, int] = {}
    for moldable_id, _ in sorted(predicted.items(), key=lambda item: item[1], reverse=True):
        plans[moldables[moldable_id][0]] = moldable_id
    jobs = []
    rows = session.execute(
        select(Job.job_id, Job.job_user, Job.job_name, Job.state, Job.queue_name, Job.reservation, Job.start_time,
               Job.stop_time, Job.assigned_moldable_job).where(Job.job_id.in_(ids)).order_by(Job.job_id))
    for job_id, user, name, state, queue, reservation, start, stop, moldable in rows:
        job: dict[str, Any] = {"id": job_id, "user": user, "name": name, "state": state, "queue": queue,
                               "reservation": reservation, "types": sorted(types.get(job_id, []))}
        if assigned.get(job_id) and start:
            walltime = moldables.get(moldable, (job_id, 0))[1]
            job.update(resources=sorted(assigned[job_id]), start=start, walltime=walltime,
                       stop=stop or start + walltime, predicted=False)
        elif job_id in plans:
            walltime = moldables[plans[job_id]][1]
            begin = predicted[plans[job_id]]
            job.update(resources=sorted(planned.get(plans[job_id], [])), start=begin, walltime=walltime,
                       stop=begin + walltime, predicted=True)
        else:
            continue
        jobs.append(job)
    return {"resources": resources, "jobs": jobs}
