"""The store's contract: every state change, on PostgreSQL (both implementations) and on SQLite.

The same cases run against :class:`PostgresStore` (one statement each),
:class:`GenericStore` on PostgreSQL, and :class:`GenericStore` on SQLite, the
embedded default, and must leave the same states, state logs, times,
resources, predictions and frags. Jobs go in through the head's own
admission; each case starts from empty job tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.databases import oar_database

pytestmark = pytest.mark.timeout(120)

TABLES = (
    "jobs", "job_types", "job_dependencies", "moldable_job_descriptions", "job_resource_groups",
    "job_resource_descriptions", "assigned_resources", "gantt_jobs_predictions", "gantt_jobs_resources",
    "frag_jobs", "event_logs", "job_state_logs",
)
BACKENDS = ("postgresql", "postgresql-generic", "sqlite")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh database of the backend's kind, this process configured to use it; the store under test."""
    from oar_celery.head.lib.store import GenericStore, PostgresStore

    kind = request.param
    state = tmp_path_factory.mktemp(f"store-{kind}")
    url = f"sqlite:///{state / 'oar.db'}" if kind == "sqlite" else create_pg_database()
    try:
        with oar_database(url, redis_url, state):
            yield PostgresStore() if kind == "postgresql" else GenericStore()
    finally:
        if kind != "sqlite":
            drop_pg_database(url)


@pytest.fixture
def store(backend: Any) -> Iterator[Any]:
    yield backend
    for table in TABLES:
        rows(f"DELETE FROM {table}")


def rows(sql: str, **params: Any) -> list[Any]:
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        result = session.execute(text(sql), params)
        return list(result) if result.returns_rows else []


def in_session(change: Any) -> Any:
    """Run ``change(session)`` in one transaction; what it returned."""
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        return change(session)


def submit(**request: Any) -> int:
    from oar_celery.config import settings
    from oar_celery.db.session import now, session_scope
    from oar_celery.head.lib import admission

    request = {"user": "alice", "command": "true", "directory": "/tmp",
               "resources": ["/resource_id=1,walltime=0:10:00"], **request}
    with session_scope() as session:
        return admission.insert(session, admission.check(session, request, settings()), at=now())[0]


def job(job_id: int) -> dict[str, Any]:
    """What a change left: state, times set, exit code, message, log, resources still held."""
    state, start, stop, code, message = rows(
        "SELECT state, start_time, stop_time, exit_code, message FROM jobs WHERE job_id = :id", id=job_id)[0]
    log = [(s, stop_ == 0) for s, stop_ in rows(
        "SELECT job_state, date_stop FROM job_state_logs WHERE job_id = :id ORDER BY job_state_log_id", id=job_id)]
    held = rows("SELECT count(*) FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id"
                " WHERE j.job_id = :id AND a.assigned_resource_index = 'CURRENT'", id=job_id)[0][0]
    return {"state": state, "started": bool(start), "stopped": bool(stop), "exit_code": code, "message": message,
            "log": log, "held": held}


def placement(job_id: int, *resources: int) -> Any:
    from oar_celery.scheduler import types as sched

    moldable = rows("SELECT moldable_id FROM moldable_job_descriptions WHERE moldable_job_id = :id", id=job_id)[0][0]
    return sched.Allocation(job_id, moldable, 0, 600, list(resources or (1,)))


def launching(store: Any, *resources: int) -> int:
    """A job ``Launching`` on ``resources``, through the store's own changes."""
    job_id = submit()
    in_session(lambda s: store.start_now(s, [placement(job_id, *resources)], {}, 100.0))
    return job_id


# move ---------------------------------------------------------------------------------------------------------


def test_a_move_changes_only_the_jobs_in_an_expected_state_and_logs_each(store: Any) -> None:
    waiting, held = submit(), submit(hold=True)
    moved = in_session(lambda s: store.move(s, [waiting, held], "toError", expected=("Waiting",), at=50.0, each={},
                                            release=False, columns={"message": "refused"}))
    assert moved == [waiting]
    assert job(waiting)["state"] == "toError" and job(waiting)["message"] == "refused"
    assert job(waiting)["log"] == [("Waiting", False), ("toError", True)]
    assert job(held)["state"] == "Hold" and job(held)["log"] == [("Hold", True)]


def test_a_move_sets_values_per_job_and_none_keeps_the_old_one(store: Any) -> None:
    first, second = launching(store), launching(store, 2)
    in_session(lambda s: store.move(s, [first, second], "Error", expected=("Launching",), at=60.0, release=True,
                                    each={"exit_code": {first: 3, second: None}, "message": {first: "a", second: "b"}},
                                    columns={"stop_time": 60.0}))
    assert (job(first)["exit_code"], job(first)["message"]) == (3, "a")
    assert (job(second)["exit_code"], job(second)["message"]) == (None, "b")
    assert job(first)["held"] == job(second)["held"] == 0  # released


def test_a_move_takes_a_sql_expression_for_a_column(store: Any) -> None:
    from oar_celery.db.models import Job

    job_id = launching(store)
    in_session(lambda s: store.move(s, [job_id], "Running", expected=("Launching",), at=70.0, each={}, release=False,
                                    columns={"suspended_time": Job.suspended_time + 5}))
    assert rows("SELECT suspended_time FROM jobs WHERE job_id = :id", id=job_id)[0][0] == 5


# starting jobs -------------------------------------------------------------------------------------------------


def test_start_now_moves_waiting_jobs_to_launching_with_their_resources_and_both_states_logged(store: Any) -> None:
    from oar_celery.head.lib.store.sql import LAUNCH_COLUMNS

    job_id = submit(name="wide")
    moldable = placement(job_id).moldable_id
    rows("INSERT INTO gantt_jobs_predictions (moldable_job_id, start_time) VALUES (:m, 500)", m=moldable)
    launched = in_session(lambda s: store.start_now(s, [placement(job_id, 1, 3)], {job_id: [moldable]}, 100.0))
    assert [row.job_id for row in launched] == [job_id]
    assert set(launched[0]._fields) == set(LAUNCH_COLUMNS) and launched[0].job_name == "wide"
    assert job(job_id)["state"] == "Launching" and job(job_id)["held"] == 2
    assert job(job_id)["log"] == [("Waiting", False), ("toLaunch", False), ("Launching", True)]
    assert rows("SELECT count(*) FROM gantt_jobs_predictions")[0][0] == 0


def test_start_now_leaves_a_job_that_is_no_longer_waiting(store: Any) -> None:
    job_id = submit()
    rows("UPDATE jobs SET state = 'Hold' WHERE job_id = :id", id=job_id)
    assert in_session(lambda s: store.start_now(s, [placement(job_id)], {}, 100.0)) == []
    assert job(job_id)["state"] == "Hold" and job(job_id)["held"] == 0


def test_to_launch_assigns_the_resources_of_the_placement(store: Any) -> None:
    job_id = submit()
    assert in_session(lambda s: store.to_launch(s, [placement(job_id, 2, 4)])) == [job_id]
    assert job(job_id)["state"] == "toLaunch" and job(job_id)["held"] == 2


# reports ---------------------------------------------------------------------------------------------------------


def report(store: Any, *changes: Any) -> dict[int, tuple[str, str, bool]]:
    applied = in_session(lambda s: store.apply_reports(s, list(changes), 200.0))
    assert not applied.foreign
    return {m.job_id: (m.old_state, m.new_state, m.ran) for m in applied.moved}


def test_a_running_report_moves_a_launching_job_and_stamps_its_start(store: Any) -> None:
    from oar_celery.head.lib.store import ReportChange

    job_id = launching(store)
    assert report(store, ReportChange(job_id, "Running", True)) == {job_id: ("Launching", "Running", True)}
    assert job(job_id)["state"] == "Running" and job(job_id)["started"] and job(job_id)["held"] == 1
    assert report(store, ReportChange(job_id, "Running", True)) == {}  # a second report changes nothing


def test_an_end_that_came_before_the_start_logs_running_on_the_way_and_frees_the_resources(store: Any) -> None:
    from oar_celery.head.lib.store import ReportChange

    job_id = launching(store)
    rows("INSERT INTO frag_jobs (frag_id_job, frag_date, frag_state) VALUES (:id, 1, 'TIMER_ARMED')", id=job_id)
    assert report(store, ReportChange(job_id, "Terminated", True, 0, "done")) == {
        job_id: ("Launching", "Terminated", True)}
    after = job(job_id)
    assert after["state"] == "Terminated" and after["started"] and after["stopped"] and after["held"] == 0
    assert (after["exit_code"], after["message"]) == (0, "done")
    assert [s for s, _ in after["log"]] == ["Waiting", "toLaunch", "Launching", "Running", "Terminated"]
    assert rows("SELECT frag_state FROM frag_jobs WHERE frag_id_job = :id", id=job_id)[0][0] == "FRAGGED"


def test_a_job_that_never_ran_ends_without_a_start(store: Any) -> None:
    from oar_celery.head.lib.store import ReportChange

    job_id = launching(store)
    assert report(store, ReportChange(job_id, "Error", False, None, "launch error")) == {
        job_id: ("Launching", "Error", False)}
    after = job(job_id)
    assert not after["started"] and "Running" not in [s for s, _ in after["log"]] and after["exit_code"] is None


def test_one_batch_ends_each_job_with_its_own_outcome_and_leaves_finished_jobs(store: Any) -> None:
    from oar_celery.head.lib.store import ReportChange

    ok, failed, gone = launching(store, 1), launching(store, 2), launching(store, 3)
    report(store, ReportChange(gone, "Error", False, None, "killed"))
    moved = report(store, ReportChange(ok, "Terminated", True, 0, "ok"), ReportChange(failed, "Error", True, 3, "3"),
                   ReportChange(gone, "Terminated", True, 0, "late"))
    assert moved == {ok: ("Launching", "Terminated", True), failed: ("Launching", "Error", True)}
    assert (job(ok)["state"], job(failed)["state"], job(failed)["exit_code"]) == ("Terminated", "Error", 3)
    assert (job(gone)["state"], job(gone)["message"]) == ("Error", "killed")


def host_of(resource_id: int) -> str:
    return str(rows("SELECT network_address FROM resources WHERE resource_id = :id", id=resource_id)[0][0])


def test_a_report_from_a_host_the_job_is_not_on_is_refused_and_the_rest_applied(store: Any) -> None:
    from oar_celery.head.lib.store import ReportChange

    here, elsewhere = launching(store, 1), launching(store, 3)
    own, other = host_of(1), host_of(3)
    assert own != other
    applied = in_session(lambda s: store.apply_reports(s, [
        ReportChange(here, "Terminated", True, 0, "ok", own), ReportChange(elsewhere, "Error", True, 1, "x", own),
        ReportChange(999_999, "Running", True, host=own),
    ], 200.0))
    assert [(m.job_id, m.new_state) for m in applied.moved] == [(here, "Terminated")]
    assert applied.foreign == {(elsewhere, own), (999_999, own)}
    assert (job(here)["state"], job(elsewhere)["state"], job(elsewhere)["held"]) == ("Terminated", "Launching", 1)


def test_a_cosystem_job_may_be_reported_by_the_configured_host(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from oar_celery.config import settings
    from oar_celery.head.lib.store import ReportChange

    monkeypatch.setenv("OAR_COSYSTEM_HOSTNAME", "frontend")
    settings.cache_clear()
    try:
        job_id = submit(types=["cosystem"], resources=["/host=1,walltime=0:10:00"])
        in_session(lambda s: store.start_now(s, [placement(job_id, 1)], {}, 100.0))
        applied = in_session(lambda s: store.apply_reports(s, [
            ReportChange(job_id, "Running", True, host="frontend"), ReportChange(0, "Running", True, host="frontend"),
        ], 200.0))
    finally:
        monkeypatch.delenv("OAR_COSYSTEM_HOSTNAME")
        settings.cache_clear()
    assert [m.job_id for m in applied.moved] == [job_id] and applied.foreign == {(0, "frontend")}
