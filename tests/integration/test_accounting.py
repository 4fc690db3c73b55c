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
