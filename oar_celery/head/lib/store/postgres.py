"""The store on PostgreSQL: every state change in one statement (:mod:`.sql`).

A move was three to four statements, a batch of reports four to six, a
quick round's start eight; their parse, plan and round trips were most of
the head's cost per job. Here each is one statement, the two big ones
prepared once per connection. What only SQLAlchemy can write (a column set
to a SQL expression) takes the generic path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.head.lib.store.base import Moved, ReportChange, ReportsApplied
from oar_celery.head.lib.store.generic import GenericStore, has_expressions
from oar_celery.head.lib.store.sql import APPLY_REPORTS, START_AT_ONCE, move_statement
from oar_celery.protocol.states import STARTED_STATES
from oar_celery.scheduler import types as sched


class PostgresStore(GenericStore):
    """:class:`~.generic.GenericStore`'s changes, one statement each."""

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
        if has_expressions(columns):
            return super().move(session, job_ids, new_state, expected=expected, at=at, each=each, release=release,
                                columns=columns)
        statement = move_statement(tuple(sorted(columns)), tuple(sorted(each)), release)
        parameters = {
            "job_ids": job_ids, "expected": list(expected), "new_state": new_state, "at": at, **columns,
            **{f"{name}_each": [values.get(job_id) for job_id in job_ids] for name, values in each.items()},
        }
        return list(session.scalars(statement, parameters))

    def start_now(
        self, session: Session, allocations: Sequence[sched.Allocation], alternatives: Mapping[int, Collection[int]],
        at: float,
    ) -> list[Any]:
        """The update stays conditional (``Waiting`` only), so a job deleted meanwhile is not started.

        ``alternatives`` gives each job's moldable ids, whose predictions are
        deleted: given here, they let PostgreSQL find the rows by their key
        whatever its statistics say of the tables' sizes.
        """
        if not allocations:
            return []
        picked = [(a.moldable_id, r) for a in allocations for r in a.resource_ids]
        others = [(m, a.job_id) for a in allocations for m in alternatives.get(a.job_id, ())]
        return list(START_AT_ONCE.execute(session, {
            "job_ids": [a.job_id for a in allocations],
            "moldables": [a.moldable_id for a in allocations],
            "picked_moldables": [m for m, _ in picked],
            "picked_resources": [r for _, r in picked],
            "alternatives": [m for m, _ in others],
            "alternative_jobs": [j for _, j in others],
            "at": at,
        }))

    def apply_reports(self, session: Session, changes: Sequence[ReportChange], at: float) -> ReportsApplied:
        """The hosts checked in the same statement: no round trip of their own."""
        if not changes:
            return ReportsApplied([], set())
        config = settings()
        rows: Any = APPLY_REPORTS.execute(session, {
            "job_ids": [c.job_id for c in changes], "states": [c.new_state for c in changes],
            "ran": [c.ran for c in changes], "exit_codes": [c.exit_code for c in changes],
            "messages": [c.message for c in changes], "hosts": [c.host for c in changes],
            "started": list(STARTED_STATES), "at": at, "window": config.accounting_window,
            "cosystem_host": config.cosystem_hostname or None, "deploy_host": config.deploy_hostname or None,
        })
        applied = ReportsApplied([], set())
        for job_id, old, new, ran, notify, foreign_host in rows:
            if foreign_host is None:
                applied.moved.append(Moved(job_id, old, new, ran, notify))
            else:
                applied.foreign.add((job_id, foreign_host))
        return applied
