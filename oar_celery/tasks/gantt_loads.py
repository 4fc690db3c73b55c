"""Loading the waiting jobs for a scheduling round: four queries whatever their number.

For a full round each query selects the waiting jobs' rows by joining on
``jobs`` (no list of ids is sent back to the database). The quick round's few
jobs are picked by id on each table's own job column, whose index finds them
directly: through the join, PostgreSQL read every waiting job's rows to keep
sixteen. Identical levels and groups are built once and shared, since most
jobs of a queue ask for the same few shapes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from oar_celery.db.models import (
    Job,
    JobDependency,
    JobResourceDescription,
    JobResourceGroup,
    JobType,
    MoldableJobDescription,
    Queue,
)
from oar_celery.scheduler import types as sched

#: OAR stores the counts ``ALL`` and ``BEST`` as these values.
SPECIAL_COUNTS: dict[int, sched.Count] = {-1: "ALL", -2: "BEST"}
WAITING = and_(Job.state == "Waiting", Job.reservation != "Scheduled")


def load_waiting(session: Session, *, first: int | None = None) -> tuple[list[sched.Job], dict[int, str]]:
    """Waiting jobs with their alternatives; and the ids held back by a dependency, with why.

    ``first`` keeps only that many jobs, the first in the scheduler's order
    (queue priority, then submission): the quick round's prefix of the queue.
    """
    query = (
        select(
            Job.job_id, Job.queue_name, Queue.priority, Job.submission_time, Job.job_user,
            Job.properties, Job.reservation, Job.start_time, Job.job_name,
        )
        .join(Queue, Queue.queue_name == Job.queue_name)
        .where(WAITING, Queue.state == "Active")
        .order_by(Queue.priority.desc(), Job.submission_time, Job.job_id)
    )
    rows = session.execute(query if first is None else query.limit(first)).all()
    if not rows:
        return [], {}
    job_ids = None if first is None else [row[0] for row in rows]
    moldables = load_moldables(session, job_ids)
    types = load_types(session, job_ids)
    dependencies, blocked = load_dependencies(session, job_ids)
    no_types: dict[str, str] = {}
    jobs = [
        sched.Job(
            id=job_id, moldables=moldables.get(job_id, []), queue=queue, queue_priority=priority,
            submission_time=int(submitted), user=user, properties_filter=properties,
            types=types.get(job_id, no_types), dependencies=dependencies.get(job_id, []),
            reservation_start=int(start) if reservation == "toSchedule" else None, name=name or "",
        )
        for job_id, queue, priority, submitted, user, properties, reservation, start, name in rows
        if job_id not in blocked
    ]
    return jobs, blocked


def _of_jobs(query: Select[Any], job_column: ColumnElement[int], job_ids: list[int] | None) -> Select[Any]:
    """Rows of every waiting job (a join on ``jobs``), or of ``job_ids`` only (the table's own index)."""
    if job_ids is None:
        return query.join(Job, Job.job_id == job_column).where(WAITING)
    return query.where(job_column.in_(job_ids))


def load_moldables(session: Session, job_ids: list[int] | None = None) -> dict[int, list[sched.Moldable]]:
    """The alternatives of every waiting job (or of ``job_ids``), in moldable order."""
    query = (
        select(
            MoldableJobDescription.moldable_job_id, MoldableJobDescription.moldable_id,
            MoldableJobDescription.moldable_walltime, JobResourceGroup.res_group_id,
            JobResourceGroup.res_group_property, JobResourceDescription.res_job_resource_type,
            JobResourceDescription.res_job_value,
        )
        .join(JobResourceGroup, JobResourceGroup.res_group_moldable_id == MoldableJobDescription.moldable_id)
        .join(JobResourceDescription, JobResourceDescription.res_job_group_id == JobResourceGroup.res_group_id)
        .where(MoldableJobDescription.moldable_index == "CURRENT")
        .order_by(
            MoldableJobDescription.moldable_id, JobResourceGroup.res_group_id, JobResourceDescription.res_job_order
        )
    )
    return _build_moldables(session.execute(_of_jobs(query, MoldableJobDescription.moldable_job_id, job_ids)))


def _build_moldables(rows: Any) -> dict[int, list[sched.Moldable]]:
    """Rows ordered by moldable, group and level order → moldables sharing Level/ResourceGroup objects.

    Shapes are keyed by plain tuples of ``(name, value)`` pairs, which hash in
    C: hashing the frozen dataclasses themselves cost most of a 2,000-job load.
    """
    shapes: dict[int, tuple[int, int, dict[int, tuple[str | None, list[tuple[str, int]]]]]] = {}
    for job_id, moldable_id, walltime, group_id, prop, name, value in rows:
        entry = shapes.get(moldable_id)
        if entry is None:
            entry = shapes[moldable_id] = (job_id, walltime, {})
        group = entry[2].get(group_id)
        if group is None:
            group = entry[2][group_id] = (prop, [])
        group[1].append((name, value))
    levels: dict[tuple[str, int], sched.Level] = {}
    shared: dict[tuple[tuple[tuple[str, int], ...], str | None], sched.ResourceGroup] = {}
    moldables: dict[int, list[sched.Moldable]] = defaultdict(list)
    for moldable_id, (job_id, walltime, groups) in shapes.items():
        built = []
        for prop, pairs in groups.values():
            key = (tuple(pairs), prop)
            found = shared.get(key)
            if found is None:
                found = shared[key] = sched.ResourceGroup(tuple(_level(levels, pair) for pair in pairs), prop)
            built.append(found)
        moldables[job_id].append(sched.Moldable(tuple(built), walltime, moldable_id))
    return moldables


def _level(levels: dict[tuple[str, int], sched.Level], pair: tuple[str, int]) -> sched.Level:
    level = levels.get(pair)
    if level is None:
        name, value = pair
        level = levels[pair] = sched.Level(name, SPECIAL_COUNTS.get(value, value))
    return level


def load_types(session: Session, job_ids: list[int] | None = None) -> dict[int, dict[str, str]]:
    """``-t`` types of the waiting jobs: ``timesharing=user,*`` → ``{"timesharing": "user,*"}``."""
    query = select(JobType.job_id, JobType.type).where(JobType.types_index == "CURRENT")
    rows = session.execute(_of_jobs(query, JobType.job_id, job_ids))
    types: dict[int, dict[str, str]] = defaultdict(dict)
    for job_id, text in rows:
        name, _, value = text.partition("=")
        types[job_id][name] = value
    return types


def load_dependencies(
    session: Session, job_ids: list[int] | None = None
) -> tuple[dict[int, list[int]], dict[int, str]]:
    """Unfinished dependencies to wait for, and jobs that cannot be scheduled because of one.

    As OAR 2.5: a job whose required job ended in error is not scheduled, and
    says why (``Cannot determine scheduling time due to dependency with the job N``).
    """
    required = Job.__table__.alias("required")
    query = (
        select(JobDependency.job_id, JobDependency.job_id_required, required.c.state, required.c.exit_code)
        .join(required, required.c.job_id == JobDependency.job_id_required)
        .where(JobDependency.job_dependency_index == "CURRENT")
    )
    rows = session.execute(_of_jobs(query, JobDependency.job_id, job_ids)).all()
    pending: dict[int, list[int]] = defaultdict(list)
    blocked: dict[int, str] = {}
    for job_id, required_id, state, exit_code in rows:
        if state == "Terminated" and not exit_code:
            continue
        if state == "Error" or (state == "Terminated" and exit_code):
            blocked[job_id] = f"Cannot determine scheduling time due to dependency with the job {required_id}"
        elif state == "Hold":
            blocked[job_id] = f"Waiting for the held job {required_id}"
        else:
            pending[job_id].append(required_id)
    return pending, blocked
