"""Loading the waiting jobs for a scheduling round: four queries whatever their number.

For a full round each query selects the waiting jobs' rows by joining on
``jobs`` (no list of ids is sent back to the database). The quick round's few
jobs are picked by id on each table's own job column, whose index finds them
directly: through the join, PostgreSQL read every waiting job's rows to keep
sixteen. Identical levels and groups are built once and shared, since most
jobs of a queue ask for the same few shapes. A quick round reads types and
dependencies only for the jobs that have any (most have neither), which the
first query tells.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, and_, any_, bindparam, exists, literal_column, select, true
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
from oar_celery.db.prepared import Prepared
from oar_celery.db.session import execute
from oar_celery.protocol.states import JobState, ReservationState
from oar_celery.scheduler import dependencies as deps
from oar_celery.scheduler import types as sched

#: OAR stores the counts ``ALL`` and ``BEST`` as these values.
SPECIAL_COUNTS: dict[int, sched.Count] = {-1: "ALL", -2: "BEST"}
WAITING = and_(Job.state == JobState.WAITING, Job.reservation != ReservationState.SCHEDULED)


#: The waiting jobs in the scheduler's order (queue priority, then submission). Statements that
#: run every cycle are built once: building them cost more than running them.
_WAITING_IN_ORDER = (
    select(
        Job.job_id, Job.queue_name, Queue.priority, Job.submission_time, Job.job_user,
        Job.properties, Job.reservation, Job.start_time, Job.job_name, Job.project,
    )
    .join(Queue, Queue.queue_name == Job.queue_name)
    .where(WAITING, Queue.state == "Active")
    .order_by(Queue.priority.desc(), Job.submission_time, Job.job_id)
)
#: Whether a job has ``-t`` types, or dependencies: the quick round reads those tables only for the jobs that do.
_TYPED = exists().where(JobType.job_id == Job.job_id, JobType.types_index == "CURRENT").label("typed")
_DEPENDENT = (
    exists().where(JobDependency.job_id == Job.job_id, JobDependency.job_dependency_index == "CURRENT")
    .label("dependent")
)
_ALL_WAITING_FLAGGED = _WAITING_IN_ORDER.add_columns(_TYPED, _DEPENDENT)
_FIRST_WAITING = _ALL_WAITING_FLAGGED.limit(bindparam("first"))


def _first_waiting_of_each_queue(first: Any) -> Select[Any]:
    """PostgreSQL: the first waiting jobs of each queue (``ix_jobs_waiting``), then the first overall.

    The first jobs overall are among the first of their queue, so the round
    reads a few index entries per queue instead of sorting the whole queue
    (2 ms for 2,000 waiting jobs, every cycle). ``first``: how many, as the
    statement takes it.
    """
    firsts = (
        select(
            Job.job_id, Job.queue_name, Job.submission_time, Job.job_user,
            Job.properties, Job.reservation, Job.start_time, Job.job_name, Job.project, _TYPED, _DEPENDENT,
        )
        .where(Job.queue_name == Queue.queue_name, WAITING)
        .order_by(Job.submission_time, Job.job_id)
        .limit(first)
        .lateral("firsts")
    )
    c = firsts.c
    return (
        select(
            c.job_id, c.queue_name, Queue.priority, c.submission_time, c.job_user,
            c.properties, c.reservation, c.start_time, c.job_name, c.project, c.typed, c.dependent,
        )
        .select_from(Queue)
        .join(firsts, true())
        .where(Queue.state == "Active")
        .order_by(Queue.priority.desc(), c.submission_time, c.job_id)
        .limit(first)
    )


#: Prepared on PostgreSQL (planning it took 0.6 ms of each quick round); :data:`_FIRST_WAITING` elsewhere.
_FIRST_WAITING_BY_QUEUE = Prepared.of(
    "oar_first_waiting", _first_waiting_of_each_queue(literal_column(":first")),
    elsewhere=_FIRST_WAITING, parameters=[("first", "integer")],
)


#: Karma by queue priority, user and project (:mod:`oar_celery.head.lib.fairshare`).
KarmaOf = Callable[[int, str, str], float]


def load_waiting(
    session: Session, *, first: int | None = None, karma: KarmaOf | None = None
) -> tuple[list[sched.Job], dict[int, str]]:
    """Waiting jobs with their alternatives; and the ids held back by a dependency, with why.

    ``first`` keeps only that many jobs, the first in the scheduler's order
    (queue priority, then karma when ``karma`` is given, then submission): the
    quick round's prefix of the queue. With karma, the first jobs of a queue
    may come from anywhere in it: every waiting job's row is read (no
    alternatives), ordered, and only the prefix's alternatives are loaded.
    """
    if first is None:
        rows = execute(session, _WAITING_IN_ORDER).all()
    elif karma is not None:
        rows = _first_by_karma(execute(session, _ALL_WAITING_FLAGGED).all(), first, karma)
    else:
        rows = _FIRST_WAITING_BY_QUEUE.execute(session, {"first": first}).all()
    if not rows:
        return [], {}
    job_ids = typed = dependent = None
    if first is not None:
        job_ids = [row.job_id for row in rows]
        typed = [row.job_id for row in rows if row.typed]
        dependent = [row.job_id for row in rows if row.dependent]
    moldables = load_moldables(session, job_ids)
    types = load_types(session, typed) if typed != [] else {}
    dependencies, blocked = load_dependencies(session, dependent) if dependent != [] else ({}, {})
    no_types: dict[str, str] = {}
    jobs = [
        sched.Job(
            id=job_id, moldables=moldables.get(job_id, []), queue=queue, queue_priority=priority,
            submission_time=int(submitted), user=user, properties_filter=properties,
            types=types.get(job_id, no_types), dependencies=dependencies.get(job_id, []),
            reservation_start=int(start) if reservation == ReservationState.TO_SCHEDULE else None, name=name or "",
            project=project or "",
        )
        for job_id, queue, priority, submitted, user, properties, reservation, start, name, project, *_ in rows
        if job_id not in blocked
    ]
    if karma is not None:
        for job in jobs:
            job.karma = karma(job.queue_priority, job.user, job.project)
    return jobs, blocked


def _first_by_karma(rows: Sequence[Any], first: int, karma: KarmaOf) -> list[Any]:
    """The ``first`` rows in the scheduler's order: queue priority, karma, submission, id."""
    def key(row: Any) -> tuple[int, float, int, int]:
        return -row.priority, karma(row.priority, row.job_user, row.project or ""), int(row.submission_time), row.job_id

    return sorted(rows, key=key)[:first]


class _Loader:
    """A loader's statement in its two forms, built once: for every waiting job, or for some job ids.

    Every waiting job: a join on ``jobs``. Some jobs: ``job_column IN`` the
    ids, on the table's own index.
    """

    def __init__(self, query: Any, job_column: Any, *, prepared_as: str | None = None) -> None:
        self.of_waiting = query.join(Job, Job.job_id == job_column).where(WAITING)
        self.of_ids = query.where(job_column.in_(bindparam("job_ids", expanding=True)))
        #: ``prepared_as``: the some-ids form prepared on PostgreSQL, the ids an ``integer[]``
        self.prepared = None if prepared_as is None else Prepared.of(
            prepared_as, query.where(job_column == any_(literal_column(":job_ids"))),
            elsewhere=self.of_ids, parameters=[("job_ids", "integer[]")],
        )

    def rows(self, session: Session, job_ids: list[int] | None) -> Any:
        if job_ids is None:
            return execute(session, self.of_waiting)
        if self.prepared is not None:
            return self.prepared.execute(session, {"job_ids": job_ids})
        return execute(session, self.of_ids, {"job_ids": job_ids})


_MOLDABLES = _Loader(
    select(
        MoldableJobDescription.moldable_job_id, MoldableJobDescription.moldable_id,
        MoldableJobDescription.moldable_walltime, JobResourceGroup.res_group_id,
        JobResourceGroup.res_group_property, JobResourceDescription.res_job_resource_type,
        JobResourceDescription.res_job_value,
    )
    .join(JobResourceGroup, JobResourceGroup.res_group_moldable_id == MoldableJobDescription.moldable_id)
    .join(JobResourceDescription, JobResourceDescription.res_job_group_id == JobResourceGroup.res_group_id)
    .where(MoldableJobDescription.moldable_index == "CURRENT")
    .order_by(MoldableJobDescription.moldable_id, JobResourceGroup.res_group_id, JobResourceDescription.res_job_order),
    MoldableJobDescription.moldable_job_id, prepared_as="oar_moldables_of",
)
_TYPES = _Loader(select(JobType.job_id, JobType.type).where(JobType.types_index == "CURRENT"), JobType.job_id)
_REQUIRED = Job.__table__.alias("required")
_DEPENDENCIES = _Loader(
    select(JobDependency.job_id, JobDependency.job_id_required, _REQUIRED.c.state, _REQUIRED.c.exit_code)
    .join(_REQUIRED, _REQUIRED.c.job_id == JobDependency.job_id_required)
    .where(JobDependency.job_dependency_index == "CURRENT"),
    JobDependency.job_id,
)


def load_moldables(session: Session, job_ids: list[int] | None = None) -> dict[int, list[sched.Moldable]]:
    """The alternatives of every waiting job (or of ``job_ids``), in moldable order."""
    return _build_moldables(_MOLDABLES.rows(session, job_ids))


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
    rows = _TYPES.rows(session, job_ids)
    types: dict[int, dict[str, str]] = defaultdict(dict)
    for job_id, text in rows:
        name, _, value = text.partition("=")
        types[job_id][name] = value
    return types


def load_dependencies(
    session: Session, job_ids: list[int] | None = None
) -> tuple[dict[int, list[int]], dict[int, str]]:
    """Unfinished dependencies to wait for, and jobs that cannot be scheduled because of one.

    OAR3's rules (:mod:`oar_celery.scheduler.dependencies`): a required job in
    ``Error`` is ignored, ``Terminated`` with exit code 0 satisfies, ``Terminated``
    with another exit code blocks the job for good, and says why.
    """
    rows = _DEPENDENCIES.rows(session, job_ids).all()
    pending: dict[int, list[int]] = defaultdict(list)
    blocked: dict[int, str] = {}
    for job_id, required_id, state, exit_code in rows:
        rule = deps.verdict(state, exit_code)
        if rule is deps.Verdict.BLOCKED:
            blocked[job_id] = deps.blocked_message(required_id, exit_code)
        elif rule is deps.Verdict.HELD:
            blocked[job_id] = f"Waiting for the held job {required_id}"
        elif rule is deps.Verdict.PENDING:
            pending[job_id].append(required_id)
    return pending, blocked
