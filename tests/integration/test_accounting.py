"""The ``accounting`` table as jobs end, and ``oaraccounting``'s catch-up, reinitialization and deletion.

In-process on real PostgreSQL: jobs go in through admission, a scheduling
round gives them resources, the head's own transitions start and end them,
and the totals of ``accounting`` are checked against the jobs' rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_scheduling_db import database, db, rows, schedule, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def empty_accounting(database: str) -> None:  # noqa: F811
    rows("TRUNCATE accounting")


def run_and_end(job_id: int, start: float, stop: float, final: str = "Terminated") -> None:
    """Move a job from ``toLaunch`` through ``Running`` to its end, with these times, as the head does."""
    from oar_celery.db.models import Job
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.transitions import set_state

    with session_scope() as session:
        set_state(session, [job_id], "Running", expected=("toLaunch",), start_time=start)
    with session_scope() as session:
        set_state(session, [job_id], final, expected=("Running",), release=True, stop_time=stop)
        assert session.get(Job, job_id) is not None


def totals(kind: str) -> dict[str, int]:
    return {user: int(total) for user, total in rows(
        "SELECT accounting_user, sum(consumption) FROM accounting WHERE consumption_type = :k "
        "GROUP BY accounting_user", k=kind)}


def expected_used() -> dict[str, int]:
    """Core-seconds used, summed over the finished jobs' own rows."""
    found = rows(
        "SELECT j.job_user, sum((j.stop_time - j.start_time) * n.cores) FROM jobs j JOIN ("
        " SELECT moldable_job_id, count(*) AS cores FROM assigned_resources GROUP BY moldable_job_id) n"
        " ON n.moldable_job_id = j.assigned_moldable_job"
        " WHERE j.state IN ('Terminated', 'Error') AND j.start_time > 0 GROUP BY j.job_user"
    )
    return {user: int(total) for user, total in found}


def some_jobs() -> list[Any]:
    """Five jobs of two users, one crossing a day boundary, one ending in error; all ended."""
    day = 86400 * 20000
    plan = [
        ("alice", "/core=1", day + 100, day + 400, "Terminated"),
        ("alice", "/core=2", day + 86000, day + 87000, "Terminated"),  # spans two windows
        ("bob", "/nodes=1", day + 10, day + 20, "Error"),
        ("bob", "/core=1", day + 500, day + 1500, "Terminated"),
        ("alice", "/core=1", day + 2000, day + 2001, "Terminated"),
    ]
    ids = []
    for user, request, start, stop, final in plan:
        job_id = submit(user=user, resources=[request + ",walltime=1:00:00"])
        schedule()
        run_and_end(job_id, start, stop, final)
        ids.append(job_id)
    return ids


def test_accounting_totals_equal_the_sum_over_finished_jobs(db: str) -> None:  # noqa: F811
    some_jobs()
    assert totals("USED") == expected_used() == {"alice": 300 + 2000 + 1, "bob": 10 * 2 + 1000}  # a node is 2 cores
    asked = totals("ASKED")
    assert asked == {"alice": 3600 * (1 + 2 + 1), "bob": 3600 * (2 + 1)}
    windows = rows("SELECT window_start, window_stop, consumption FROM accounting "
                   "WHERE accounting_user = 'alice' AND consumption_type = 'USED' ORDER BY window_start")
    day = 86400 * 20000
    assert [(w[0] - day, w[1] - day) for w in windows] == [(0, 86399), (86400, 172799)]
    assert windows[0][2] == 300 + 1 + 2 * 400 and windows[1][2] == 2 * 600
    assert rows("SELECT count(*) FROM jobs WHERE accounted = 'YES'")[0][0] == 5


def test_an_end_applied_twice_is_accounted_once(db: str) -> None:  # noqa: F811
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import accounting

    ids = some_jobs()
    before = totals("USED")
    with session_scope() as session:
        assert accounting.account(session, ids) == []
        assert accounting.account_all(session) == []
    assert totals("USED") == before


def test_oaraccounting_reinitialize_then_update_rebuilds_the_same_table(db: str) -> None:  # noqa: F811
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import accounting

    ids = some_jobs()
    before = rows("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6")
    with session_scope() as session:
        accounting.reinitialize(session)
    assert rows("SELECT count(*) FROM accounting")[0][0] == 0
    with session_scope() as session:
        assert sorted(accounting.account_all(session)) == sorted(ids)
    assert rows("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6") == before


def test_delete_before_drops_only_the_windows_that_ended(db: str) -> None:  # noqa: F811
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import accounting

    some_jobs()
    day = 86400 * 20000
    with session_scope() as session:
        accounting.delete_before(session, day + 86399)
    assert {w for (w,) in rows("SELECT DISTINCT window_start FROM accounting")} == {day + 86400}


JOB_TABLES = ("jobs", "moldable_job_descriptions", "job_resource_groups", "job_resource_descriptions",
              "assigned_resources", "job_state_logs", "event_logs", "job_types")


def job_rows(job_ids: list[int]) -> dict[str, int]:
    """How many rows each table holds about these jobs."""
    moldables = "(SELECT moldable_id FROM moldable_job_descriptions WHERE moldable_job_id = ANY(:ids))"
    counts = {
        "jobs": "SELECT count(*) FROM jobs WHERE job_id = ANY(:ids)",
        "moldable_job_descriptions": "SELECT count(*) FROM moldable_job_descriptions WHERE moldable_job_id = ANY(:ids)",
        "job_resource_groups": f"SELECT count(*) FROM job_resource_groups WHERE res_group_moldable_id IN {moldables}",
        "job_resource_descriptions": "SELECT count(*) FROM job_resource_descriptions WHERE res_job_group_id IN "
        f"(SELECT res_group_id FROM job_resource_groups WHERE res_group_moldable_id IN {moldables})",
        "assigned_resources": f"SELECT count(*) FROM assigned_resources WHERE moldable_job_id IN {moldables}",
        "job_state_logs": "SELECT count(*) FROM job_state_logs WHERE job_id = ANY(:ids)",
        "event_logs": "SELECT count(*) FROM event_logs WHERE job_id = ANY(:ids)",
        "job_types": "SELECT count(*) FROM job_types WHERE job_id = ANY(:ids)",
    }
    return {name: rows(sql, ids=job_ids)[0][0] for name, sql in counts.items()}


def admin(database_url: str, *args: str) -> Any:
    import os
    import subprocess

    from tests.cluster import command_path

    env = {key: value for key, value in os.environ.items() if key.startswith("OAR_") or key in ("PATH", "HOME")}
    env["OAR_DATABASE_URL"] = database_url
    return subprocess.run([command_path("oar-celery"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_db_purge_keeps_accounting_and_removes_the_jobs_rows(db: str) -> None:  # noqa: F811
    ended = some_jobs()
    rows("DELETE FROM accounting")
    rows("UPDATE jobs SET accounted = 'NO'")  # as if they ended before accounting was on
    waiting = submit(user="carol", resources=["/core=1"])
    before = job_rows(ended)
    assert before["jobs"] == 5 and before["assigned_resources"] > 0 and before["job_state_logs"] > 0
    result = admin(db, "db", "purge", "--before", "2100-01-01")
    assert result.returncode == 0, result.stderr
    assert "5 job(s)" in result.stdout
    assert job_rows(ended) == dict.fromkeys(before, 0)
    assert totals("USED") == {"alice": 300 + 2000 + 1, "bob": 10 * 2 + 1000}  # accounted on the way out
    assert rows("SELECT state FROM jobs WHERE job_id = :id", id=waiting) == [("Waiting",)]


def test_db_archive_writes_each_job_with_its_rows_then_removes_them(db: str, tmp_path: Any) -> None:  # noqa: F811
    import json

    ended = some_jobs()
    target = tmp_path / "jobs.jsonl"
    result = admin(db, "db", "archive", "--before", "2100-01-01 00:00", "--to", str(target))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["job"]["job_id"] for r in records] == ended
    assert all(r["assigned_resources"] and r["moldable_job_descriptions"] and r["job_state_logs"] for r in records)
    assert job_rows(ended)["jobs"] == 0
    again = admin(db, "db", "archive", "--before", "2100-01-01", "--to", str(target))
    assert again.returncode == 1 and "exists already" in again.stderr


def test_db_purge_refuses_a_bad_date_and_keeps_everything(db: str) -> None:  # noqa: F811
    ended = some_jobs()
    result = admin(db, "db", "purge", "--before", "last tuesday")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "bad date" in result.stderr
    assert job_rows(ended)["jobs"] == 5
    kept = admin(db, "db", "purge", "--before", "1990-01-01")
    assert kept.returncode == 0 and job_rows(ended)["jobs"] == 5


def test_the_one_statement_account_flags_and_counts_what_the_two_step_one_does(db: str) -> None:  # noqa: F811
    """PostgreSQL's flag-and-usage statement against the flag, then the usage read: same ids, same rows.

    Among the jobs, one ended without resources (nothing to count, flagged all the same) and one never started
    (neither flagged nor counted).
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from oar_celery.db.models import Accounting
    from oar_celery.db.session import get_engine
    from oar_celery.head.lib import accounting

    ids = some_jobs()
    bare = submit(user="carol", resources=["/core=1,walltime=1:00:00"])
    unstarted = submit(user="carol", resources=["/core=1,walltime=1:00:00"])
    rows("UPDATE jobs SET state = 'Terminated', start_time = 1000, stop_time = 2000, assigned_moldable_job = 0"
         " WHERE job_id = :j", j=bare)
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :j", j=unstarted)
    rows("UPDATE jobs SET accounted = 'NO'")
    rows("TRUNCATE accounting")
    outcomes = []
    for way in (accounting.account_in_steps, accounting.account_at_once):
        with Session(get_engine()) as session:  # rolled back: each way starts from the same rows
            flagged = sorted(way(session, [*ids, bare, unstarted], 86400))
            table = sorted(tuple(row) for row in session.execute(select(Accounting.__table__)))
            outcomes.append((flagged, table))
            session.rollback()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == sorted([*ids, bare])
    assert outcomes[0][1]
