"""``oar-celery db archive`` and ``db purge``: finished jobs leave the database, their usage stays.

A job that ended before a date goes with every row that describes it
(moldables, resource requests, types, dependencies, assigned resources,
state log, events, frag and walltime requests). Its usage is accounted
first, so ``accounting`` and the karma computed from it are the same before
and after. ``archive`` writes each job and its rows as one JSON line before
they go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from oar_celery.db.models import (
    FINAL_STATES,
    AssignedResource,
    EventLog,
    EventLogHostname,
    FragJob,
    GanttJobPrediction,
    GanttJobResource,
    Job,
    JobDependency,
    JobResourceDescription,
    JobResourceGroup,
    JobStateLog,
    JobType,
    MoldableJobDescription,
    WalltimeChange,
)
from oar_celery.head.lib import accounting

CHUNK = 1000


def finished_before(session: Session, date: float) -> list[int]:
    """Jobs in a final state whose end (or submission, if they never ran) is before ``date``."""
    ended = func.coalesce(func.nullif(Job.stop_time, 0), Job.submission_time)
    return list(session.scalars(
        select(Job.job_id).where(Job.state.in_(FINAL_STATES), ended < date).order_by(Job.job_id)
    ))


def _tables(job_ids: list[int]) -> list[tuple[Table, Any]]:
    """Each table holding rows of these jobs, with the condition that selects them, children first."""
    moldables = select(MoldableJobDescription.moldable_id).where(MoldableJobDescription.moldable_job_id.in_(job_ids))
    groups = select(JobResourceGroup.res_group_id).where(JobResourceGroup.res_group_moldable_id.in_(moldables))
    events = select(EventLog.event_id).where(EventLog.job_id.in_(job_ids))
    pairs: list[tuple[Any, Any]] = [
        (JobResourceDescription, JobResourceDescription.res_job_group_id.in_(groups)),
        (JobResourceGroup, JobResourceGroup.res_group_moldable_id.in_(moldables)),
        (AssignedResource, AssignedResource.moldable_job_id.in_(moldables)),
        (GanttJobResource, GanttJobResource.moldable_job_id.in_(moldables)),
        (GanttJobPrediction, GanttJobPrediction.moldable_job_id.in_(moldables)),
        (MoldableJobDescription, MoldableJobDescription.moldable_job_id.in_(job_ids)),
        (EventLogHostname, EventLogHostname.event_id.in_(events)),
        (EventLog, EventLog.job_id.in_(job_ids)),
        (JobType, JobType.job_id.in_(job_ids)),
        (JobDependency, JobDependency.job_id.in_(job_ids)),
        (JobStateLog, JobStateLog.job_id.in_(job_ids)),
        (FragJob, FragJob.frag_id_job.in_(job_ids)),
        (WalltimeChange, WalltimeChange.job_id.in_(job_ids)),
        (Job, Job.job_id.in_(job_ids)),
    ]
    return [(model.__table__, condition) for model, condition in pairs]


def export(session: Session, job_ids: list[int]) -> Iterator[dict[str, Any]]:
    """One dict per job: its ``jobs`` row and, per table, the rows that describe it."""
    for start in range(0, len(job_ids), CHUNK):
        chunk = job_ids[start:start + CHUNK]
        tables = {table.name: [dict(row._mapping) for row in session.execute(select(table).where(condition))]
                  for table, condition in _tables(chunk)}
        jobs = tables.pop("jobs")
        for job in jobs:
            yield {"job": job, **{name: _of_job(name, rows, job, tables) for name, rows in tables.items()}}


def _of_job(name: str, rows: list[dict[str, Any]], job: dict[str, Any], tables: dict[str, list[dict[str, Any]]]
            ) -> list[dict[str, Any]]:
    job_id = job["job_id"]
    moldables = {m["moldable_id"] for m in tables["moldable_job_descriptions"] if m["moldable_job_id"] == job_id}
    groups = {g["res_group_id"] for g in tables["job_resource_groups"] if g["res_group_moldable_id"] in moldables}
    events = {e["event_id"] for e in tables["event_logs"] if e["job_id"] == job_id}
    keys = {
        "job_resource_descriptions": ("res_job_group_id", groups),
        "job_resource_groups": ("res_group_moldable_id", moldables),
        "assigned_resources": ("moldable_job_id", moldables),
        "gantt_jobs_resources": ("moldable_job_id", moldables),
        "gantt_jobs_predictions": ("moldable_job_id", moldables),
        "event_log_hostnames": ("event_id", events),
        "frag_jobs": ("frag_id_job", {job_id}),
    }
    column, wanted = keys.get(name, ("job_id" if name != "moldable_job_descriptions" else "moldable_job_id", {job_id}))
    return [row for row in rows if row[column] in wanted]


def purge(session: Session, job_ids: list[int]) -> int:
    """Account for the jobs, then delete them and every row that describes them; how many went."""
    removed = 0
    for start in range(0, len(job_ids), CHUNK):
        chunk = job_ids[start:start + CHUNK]
        accounting.account(session, chunk)
        for table, condition in _tables(chunk):
            result = session.execute(delete(table).where(condition))
            if table.name == "jobs":
                removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def archive(session: Session, job_ids: list[int], out: IO[str]) -> int:
    """Write the jobs as JSON lines to ``out``, then purge them; how many went."""
    for record in export(session, job_ids):
        out.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    out.flush()
    return purge(session, job_ids)
