"""The quick round starts its jobs in one statement on PostgreSQL, with what the Runner would send."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_scheduling_db import database, db, rows, state, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def quick_round(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Run a quick round; the launch specs it sends (captured, not sent)."""
    from oar_celery.head import quick_round as module
    from oar_celery.head.lib import launch

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(launch, "send_launches", sent.extend)
    from oar_celery.head.lib.context import process_context

    module.run_quick_round(process_context())
    return sent


def test_jobs_start_with_the_runners_specs_their_resources_and_both_states_logged(db: str, monkeypatch) -> None:  # noqa: F811
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.launch import build_specs

    wide = submit(resources=["/nodes=2/core=1,walltime=0:05:00"], name="wide", types=["idempotent"])
    small = submit(resources=["/resource_id=1,walltime=0:10:00"], stdout="out.%jobid%")
    specs = quick_round(monkeypatch)
    assert sorted(spec["job_id"] for spec in specs) == [wide, small]
    with session_scope() as session:
        from_database = {spec["job_id"]: spec for spec in build_specs(session, [wide, small])}
    for spec in specs:
        assert spec == from_database[spec["job_id"]]
        assert state(spec["job_id"]) == "Launching"
        log = rows("SELECT job_state, date_stop FROM job_state_logs WHERE job_id = :id ORDER BY job_state_log_id",
                   id=spec["job_id"])
        assert [entry[0] for entry in log] == ["Waiting", "toLaunch", "Launching"]
        assert log[0][1] > 0 and log[1][1] > 0 and log[2][1] == 0
    assert {spec["job_id"]: len(spec["resources"]) for spec in specs} == {wide: 2, small: 1}
    assert rows("SELECT count(*) FROM assigned_resources WHERE assigned_resource_index = 'CURRENT'")[0][0] == 3
    assert rows("SELECT count(*) FROM gantt_jobs_predictions")[0][0] == 0
