"""A batch of node reports on PostgreSQL: one statement, with what the statement-by-statement path does.

Each case runs twice on real PostgreSQL, once through the one statement and
once statement by statement (the path of other databases), and must leave the
same states, logs, times, resources, frags and events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.test_scheduling_db import database, db, rows, schedule, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["one statement", "statement by statement"])
def apply(request: pytest.FixtureRequest, db: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:  # noqa: F811
    from oar_celery.head import reports

    if request.param == "statement by statement":
        from oar_celery.head.lib.store import GenericStore

        generic = GenericStore()
        monkeypatch.setattr(reports, "store_for", lambda session: generic)
    killed: list[int] = []
    monkeypatch.setattr(reports.sender, "send", lambda messages: killed.extend(m.kwargs["job_id"] for m in messages))

    def run(*batch: dict[str, Any]) -> Any:
        applied = reports.process(list(batch), in_cycle=True)
        applied.killed = list(killed)
        return applied

    return run


def launching(count: int) -> list[int]:
    job_ids = [submit(resources=["/resource_id=1,walltime=0:10:00"]) for _ in range(count)]
    schedule()
    rows("UPDATE jobs SET state = 'Launching' WHERE job_id = ANY(:ids)", ids=job_ids)
    return job_ids


def started(job_id: int) -> dict[str, Any]:
    return {"kind": "running", "job_id": job_id, "host": "node1", "pid": 42}


def ended(job_id: int, code: int | None = 0, reason: str = "exited") -> dict[str, Any]:
    return {"kind": "ended", "job_id": job_id, "host": "node1", "exit_code": code, "reason": reason, "message": ""}


def job(job_id: int) -> dict[str, Any]:
    """What the batch changed: state, times set, exit code, log, resources still held."""
    state, start, stop, code, message = rows(
        "SELECT state, start_time, stop_time, exit_code, message FROM jobs WHERE job_id = :id", id=job_id)[0]
    log = [(s, open_) for s, open_ in rows(
        "SELECT job_state, date_stop = 0 FROM job_state_logs WHERE job_id = :id ORDER BY job_state_log_id", id=job_id)]
    held = rows("SELECT count(*) FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id"
                " WHERE j.job_id = :id AND a.assigned_resource_index = 'CURRENT'", id=job_id)[0][0]
    return {"state": state, "started": bool(start), "stopped": bool(stop), "exit_code": code, "message": message,
            "log": log[2:], "held": held}  # Waiting and toLaunch come from the submission and the round


def test_a_start_and_an_end_in_one_batch_log_running_on_the_way(apply) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = launching(1)
    applied = apply(started(job_id), ended(job_id))
    assert job(job_id) == {
        "state": "Terminated", "started": True, "stopped": True, "exit_code": 0,
        "message": "the job exited with code 0", "held": 0,
        "log": [("Running", False), ("Terminated", True)],
    }
    assert applied.running == {job_id: "node1"} and [e.job_id for e in applied.ended] == [job_id]


def test_a_start_alone_then_an_end_with_exit_code_3(apply) -> None:  # type: ignore[no-untyped-def]
    """OAR3: a job whose command exited 3 is Terminated; its exit code is kept as a wait status (768)."""
    (job_id,) = launching(1)
    apply(started(job_id))
    assert job(job_id)["state"] == "Running" and job(job_id)["held"] == 1
    applied = apply(ended(job_id, 3))
    assert job(job_id) == {
        "state": "Terminated", "started": True, "stopped": True, "exit_code": 768,
        "message": "the job exited with code 3", "held": 0,
        "log": [("Running", False), ("Terminated", True)],
    }
    assert applied.running == {}


def test_a_job_that_never_ran_goes_to_error_without_running(apply) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = launching(1)
    apply(ended(job_id, None, "launch_error"))
    assert job(job_id) == {
        "state": "Error", "started": False, "stopped": True, "exit_code": None,
        "message": "launch error", "held": 0, "log": [("Error", True)],
    }
    assert rows("SELECT type FROM event_logs WHERE job_id = :id", id=job_id) == [("LAUNCHING_ERROR",)]


def test_a_batch_applied_twice_changes_nothing_more(apply) -> None:  # type: ignore[no-untyped-def]
    first, second = launching(2)
    batch = (started(first), ended(first), started(second))
    apply(*batch)
    before = (job(first), job(second))
    applied = apply(*batch)
    assert (job(first), job(second)) == before
    assert applied.running == {} and applied.ended == [] and applied.killed == []


def test_a_start_reported_after_the_end_kills_what_is_left_and_frags_are_done(apply) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = launching(1)
    rows("INSERT INTO frag_jobs (frag_id_job, frag_date, frag_state) VALUES (:id, 0, 'LEON')", id=job_id)
    apply(ended(job_id, 0, "walltime"))
    assert rows("SELECT frag_state FROM frag_jobs WHERE frag_id_job = :id", id=job_id) == [("FRAGGED",)]
    assert rows("SELECT type FROM event_logs WHERE job_id = :id", id=job_id) == [("WALLTIME",)]
    applied = apply(started(job_id))
    assert applied.stale == {job_id: "node1"} and applied.killed == [job_id]
    assert job(job_id)["state"] == "Error"


def test_the_jobs_a_batch_ends_are_accounted_once_and_those_that_never_ran_not_at_all(apply) -> None:  # type: ignore[no-untyped-def]
    """The jobs that ran are flagged and their core-seconds added (USED to their stop, ASKED their walltime)."""
    rows("TRUNCATE accounting")
    both, later, never = launching(3)
    apply(started(later))
    rows("UPDATE jobs SET start_time = floor(start_time) - 100 WHERE job_id = :id", id=later)
    batch = (started(both), ended(both), ended(later, 0), ended(never, None, "launch_error"))
    apply(*batch)
    apply(*batch)
    flags = dict(rows("SELECT job_id, accounted FROM jobs WHERE job_id = ANY(:ids)", ids=[both, later, never]))
    assert flags == {both: "YES", later: "YES", never: "NO"}
    expected = rows(
        "SELECT sum(floor(stop_time)::bigint - floor(start_time)::bigint) FROM jobs WHERE job_id = ANY(:ids)",
        ids=[both, later])[0][0]
    by_kind = dict(rows("SELECT consumption_type, sum(consumption) FROM accounting GROUP BY consumption_type"))
    assert by_kind == {"USED": expected, "ASKED": 2 * 600}


def test_a_forged_end_from_another_node_is_refused_and_the_nodes_own_start_applied(  # type: ignore[no-untyped-def]
    apply, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from oar_celery.head import reports

    monkeypatch.setattr(reports, "head_keyring", lambda: SimpleNamespace(enabled=True))
    (job_id,), (other,) = launching(1), launching(1)
    assert rows("SELECT DISTINCT r.network_address FROM resources r JOIN assigned_resources a"
                " ON a.resource_id = r.resource_id JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id"
                " WHERE j.job_id IN (:a, :b)", a=job_id, b=other) == [("node1",)]
    forged = {**ended(job_id), "host": "node2"}
    applied = apply(started(job_id), forged, {**ended(other), "host": "node2"})
    assert (job(job_id)["state"], job(other)["state"]) == ("Running", "Launching")
    assert list(applied.running) == [job_id] and not applied.ended
