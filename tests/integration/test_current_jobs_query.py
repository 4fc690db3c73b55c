"""The current jobs are read through the state index, whatever the history: ``state IN`` the live states."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_scheduling_db import database, db  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def test_current_and_final_states_share_out_every_state() -> None:
    from oar_celery.protocol.states import CURRENT_STATES, FINAL_STATES, JobState

    assert set(CURRENT_STATES) | set(FINAL_STATES) == set(JobState)
    assert not set(CURRENT_STATES) & set(FINAL_STATES)


def index_conditions(plan: dict) -> list[str]:
    """Every ``Index Cond`` of a JSON plan, its sub-plans included."""
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


def test_the_current_jobs_selection_is_answered_by_the_state_index(db: str) -> None:  # noqa: F811
    from sqlalchemy import select, text

    from oar_celery.client.queries import job_selection
    from oar_celery.db.models import Job
    from oar_celery.db.session import session_scope

    query = select(Job.job_id).where(*job_selection(current_only=True))
    with session_scope() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        (plan,) = session.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    conditions = index_conditions(plan["Plan"] if isinstance(plan, dict) else json.loads(plan)["Plan"])
    assert any("state" in condition for condition in conditions), conditions
