"""The store in SQLAlchemy statements any database runs: SQLite for a one-machine cluster, and the reference.

Each change takes a few statements: the conditional update (``RETURNING``
the ids that moved), then the state log and the release for those ids.
:class:`~.postgres.PostgresStore` does the same in one statement each; the
contract suite holds both to the same outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, ClauseElement, bindparam, case, delete, select, update
from sqlalchemy.orm import Session

from oar_celery.db.bulk import copy_rows, insert_rows
from oar_celery.db.models import (
    AssignedResource,
    FragJob,
    GanttJobPrediction,
    GanttJobResource,
    Job,
    JobStateLog,
)
from oar_celery.db.session import now
from oar_celery.head.lib.accounting import account_in_steps
from oar_celery.head.lib.store.base import Moved, ReportChange, ReportsApplied
from oar_celery.head.lib.store.sql import LAUNCH_COLUMNS
from oar_celery.head.lib.trust import off_their_hosts
from oar_celery.protocol.states import STARTED_STATES, FragState, JobState
from oar_celery.scheduler import types as sched

_MOLDABLES: BindParameter[Any] = bindparam("moldables", expanding=True)
_JOB_IDS: BindParameter[Any] = bindparam("job_ids", expanding=True)
_UNASSIGN = delete(AssignedResource).where(AssignedResource.moldable_job_id.in_(_MOLDABLES))
_FORGET_RESOURCES = delete(GanttJobResource).where(GanttJobResource.moldable_job_id.in_(_MOLDABLES))
_FORGET_STARTS = delete(GanttJobPrediction).where(GanttJobPrediction.moldable_job_id.in_(_MOLDABLES))
_STATES_OF = select(Job.job_id, Job.state, Job.notify).where(Job.job_id.in_(_JOB_IDS))
_LAUNCH_ROWS = select(*(Job.__table__.c[name] for name in LAUNCH_COLUMNS)).where(Job.job_id.in_(_JOB_IDS))
_FRAGS_DONE = (
    update(FragJob)
    .where(FragJob.frag_id_job.in_(_JOB_IDS), FragJob.frag_state.in_((FragState.LEON, FragState.TIMER_ARMED)))
    .values(frag_state=FragState.FRAGGED)
    .execution_options(synchronize_session=False)
)


class GenericStore:
    """The state changes as SQLAlchemy statements (see :class:`~.base.Store` for each one's contract)."""

    def move(
        self,
        session: Session,
        job_ids: list[int],
        new_state: str,
        *,
        expected: Sequence[str],
        at: float,
        each: Mapping[str, Mapping[int, object]],
        release: bool,
        columns: dict[str, Any],
    ) -> list[int]:
        values = dict(columns)
        for name, per_job in each.items():
            given = {job_id: value for job_id, value in per_job.items() if value is not None}
            if given:
                values[name] = case(given, value=Job.job_id, else_=getattr(Job, name))
        statement = (
            update(Job)
            .where(Job.job_id.in_(job_ids), Job.state.in_(expected))
            .values(state=new_state, **values)
            .returning(Job.job_id)
            .execution_options(synchronize_session=False)
        )
        moved = list(session.scalars(statement))
        if moved:
            log_states(session, moved, new_state, at)
            if release:
                release_resources(session, moved)
        return moved

    def to_launch(self, session: Session, allocations: Sequence[sched.Allocation]) -> list[int]:
        if not allocations:
            return []
        by_job = {a.job_id: a for a in allocations}
        moldable_of: dict[int, object] = {job_id: a.moldable_id for job_id, a in by_job.items()}
        moved = self.move(
            session, list(by_job), JobState.TO_LAUNCH, expected=(JobState.WAITING,), at=now(), release=False,
            each={"assigned_moldable_job": moldable_of}, columns={"scheduler_info": ""},
        )
        if moved:
            session.execute(_UNASSIGN, {"moldables": [moldable_of[job_id] for job_id in moved]})
            copy_rows(
                session,
                AssignedResource.__table__,
                ("moldable_job_id", "resource_id", "assigned_resource_index"),
                ((by_job[j].moldable_id, r, "CURRENT") for j in moved for r in by_job[j].resource_ids),
            )
        return moved

    def start_now(
        self, session: Session, allocations: Sequence[sched.Allocation], alternatives: Mapping[int, Collection[int]],
        at: float,
    ) -> list[Any]:
        started = self.to_launch(session, allocations)
        if not started:
            return []
        forget_predictions(session, [m for job_id in started for m in alternatives.get(job_id, ())])
        moved = self.move(
            session, started, JobState.LAUNCHING, expected=(JobState.TO_LAUNCH,), at=at, each={}, release=False,
            columns={},
        )
        return list(session.execute(_LAUNCH_ROWS, {"job_ids": moved})) if moved else []

    def apply_reports(self, session: Session, changes: Sequence[ReportChange], at: float) -> ReportsApplied:
        """The hosts checked, then the starts, the ends of each final state and the frags, each a statement;
        states read first."""
        claims = [(c.job_id, c.host) for c in changes if c.host is not None]
        foreign = off_their_hosts(session, claims)
        owned = [c for c in changes if c.host is None or (c.job_id, c.host) not in foreign]
        return ReportsApplied(self._apply_owned(session, owned, at) if owned else [], foreign)

    def _apply_owned(self, session: Session, changes: Sequence[ReportChange], at: float) -> list[Moved]:
        by_job = {change.job_id: change for change in changes}
        before = {job_id: (state, notify) for job_id, state, notify in session.execute(
            _STATES_OF, {"job_ids": list(by_job)}
        )}
        # a job whose end report came first, or with its start, ran all the same: Running on the way
        starting = [c.job_id for c in changes if c.ran and before.get(c.job_id, ("",))[0] == JobState.LAUNCHING]
        started = set(self.move(
            session, starting, JobState.RUNNING, expected=(JobState.LAUNCHING,), at=at, each={}, release=False,
            columns={"start_time": at},
        ))
        finals: dict[str, list[ReportChange]] = defaultdict(list)
        for change in changes:
            if change.new_state != JobState.RUNNING:
                finals[change.new_state].append(change)
        ended: set[int] = set()
        for state, ends in finals.items():
            ended.update(self.move(
                session, [c.job_id for c in ends], state, expected=STARTED_STATES, at=at, release=True,
                each={"message": {c.job_id: c.message for c in ends},
                      "exit_code": {c.job_id: c.exit_code for c in ends}},
                columns={"stop_time": at},
            ))
        if ended:
            session.execute(_FRAGS_DONE, {"job_ids": list(ended)})
            account_in_steps(session, sorted(ended))
        return [
            Moved(job_id, JobState.LAUNCHING if job_id in started else before[job_id][0],
                  by_job[job_id].new_state, by_job[job_id].ran, before[job_id][1])
            for job_id in by_job
            if job_id in started or job_id in ended
        ]


def log_states(session: Session, job_ids: Sequence[int], new_state: str, at: float) -> None:
    """Close the jobs' current state log entries and open new ones."""
    session.execute(
        update(JobStateLog)
        .where(JobStateLog.job_id.in_(job_ids), JobStateLog.date_stop == 0)
        .values(date_stop=at)
        .execution_options(synchronize_session=False)
    )
    insert_rows(
        session, JobStateLog.__table__,
        [{"job_id": job_id, "job_state": new_state, "date_start": at, "date_stop": 0.0} for job_id in job_ids],
    )


def release_resources(session: Session, job_ids: Sequence[int]) -> None:
    """Mark the jobs' resource assignments as history: the scheduler may reuse them."""
    if not job_ids:
        return
    moldables = select(Job.assigned_moldable_job).where(Job.job_id.in_(job_ids))
    session.execute(
        update(AssignedResource)
        .where(AssignedResource.moldable_job_id.in_(moldables), AssignedResource.assigned_resource_index == "CURRENT")
        .values(assigned_resource_index="LOG")
        .execution_options(synchronize_session=False)
    )


def forget_predictions(session: Session, moldable_ids: Collection[int]) -> None:
    """Delete the stored predictions (start and resources) of these moldables."""
    if moldable_ids:
        moldables = list(set(moldable_ids))
        session.execute(_FORGET_RESOURCES, {"moldables": moldables})
        session.execute(_FORGET_STARTS, {"moldables": moldables})


def has_expressions(columns: Mapping[str, object]) -> bool:
    """Whether a column is set to a SQL expression (``Job.suspended_time + 3``), which only SQLAlchemy writes."""
    return any(isinstance(value, ClauseElement) for value in columns.values())
