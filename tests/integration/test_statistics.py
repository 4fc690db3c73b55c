"""A burst of submissions refreshes PostgreSQL's statistics of the jobs table at once."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from tests.integration.test_scheduling_db import database, db, rows  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def analyzed(table: str = "jobs") -> tuple[int, float]:
    """How many times ``table`` was analyzed by hand, and the row count the planner believes."""
    (count,) = rows("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t", t=table)[0]
    (tuples,) = rows("SELECT reltuples FROM pg_class WHERE relname = :t", t=table)[0]
    return count, tuples


#: ``ANALYZE`` runs of each table in one refresh: ``jobs`` twice, the second time for its states.
PASSES = {"jobs": 2}
#: The tables an array of plain jobs adds a row to per job.
FILLED = ("jobs", "job_state_logs", "moldable_job_descriptions", "job_resource_groups", "job_resource_descriptions")


def analyzed_once_more(before: dict[str, int], timeout: float = 10.0) -> bool:
    """Wait for one refresh to have analyzed every table of ``before`` (the refresh runs in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {table: analyzed(table)[0] for table in before}
        if all(counts[table] == before[table] + PASSES.get(table, 1) for table in before):
            return True
        time.sleep(0.05)
    return False


def submit_array(size: int) -> list[int]:
    from oar_celery.head.lib.submission import submit_requests

    (answer,) = submit_requests([{"user": "alice", "command": "true", "directory": "/tmp", "array": size}])
    return answer["job_ids"]


def test_a_burst_of_submissions_analyzes_the_jobs_table_and_a_few_do_not(db: str, monkeypatch) -> None:  # noqa: F811
    from oar_celery.db import statistics

    monkeypatch.setattr(statistics, "_last_refresh", float("-inf"))
    before = {table: analyzed(table)[0] for table in statistics.TABLES}
    assert len(submit_array(statistics.BURST - 1)) == statistics.BURST - 1
    time.sleep(0.5)
    assert {table: analyzed(table)[0] for table in statistics.TABLES} == before
    assert len(submit_array(statistics.BURST)) == statistics.BURST
    assert analyzed_once_more(before)
    for table in FILLED:  # job_types and job_dependencies were analyzed too, and hold no row of these jobs
        assert analyzed(table)[1] >= 2 * statistics.BURST - 1, table


def test_bursts_in_quick_succession_analyze_once(db: str, monkeypatch) -> None:  # noqa: F811
    from oar_celery.db import statistics

    monkeypatch.setattr(statistics, "_last_refresh", float("-inf"))
    before = {"jobs": analyzed()[0]}
    submit_array(statistics.BURST)
    submit_array(statistics.BURST)
    assert analyzed_once_more(before)
    time.sleep(0.5)
    assert analyzed()[0] == before["jobs"] + PASSES["jobs"]


def test_the_refresh_after_a_burst_reads_a_small_sample(db: str, monkeypatch) -> None:  # noqa: F811
    """Its cost stays flat with a million finished jobs: ``SAMPLE_TARGET`` buckets, not PostgreSQL's 100."""
    from oar_celery.db import statistics

    monkeypatch.setattr(statistics, "_last_refresh", float("-inf"))
    before = {"jobs": analyzed()[0]}
    submit_array(statistics.BURST * 2)
    assert analyzed_once_more(before)
    ((bounds,),) = rows(
        "SELECT array_length(histogram_bounds::text::int[], 1) FROM pg_stats "
        "WHERE tablename = 'jobs' AND attname = 'job_id'"
    )
    assert bounds == statistics.SAMPLE_TARGET + 1


def test_the_refresh_counts_the_waiting_jobs_behind_a_long_history(db: str, monkeypatch) -> None:  # noqa: F811
    """300,000 finished jobs, then a burst of 1,000: the planner expects about 1,000 waiting jobs, not 1."""
    from oar_celery.db import statistics
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        session.execute(text(
            "INSERT INTO jobs (job_id, array_id, array_index, initial_request, job_type, state, reservation, message,"
            " scheduler_info, job_user, project, job_group, command, exit_code, queue_name, launching_directory,"
            " submission_time, start_time, stop_time, assigned_moldable_job, checkpoint, checkpoint_signal,"
            " resubmit_job_id, suspended, suspended_time) SELECT g, g, 1, 'oarsub true', 'PASSIVE', 'Terminated',"
            " 'None', '', '', 'old', 'default', '', 'true', 0, 'default', '/tmp', g, g + 1, g + 2, 0, 0, 12, 0, 'NO',"
            " 0 FROM generate_series(1, 300000) AS g"
        ))
        session.execute(text("SELECT setval(pg_get_serial_sequence('jobs', 'job_id'), 300000)"))
    monkeypatch.setattr(statistics, "_last_refresh", float("-inf"))
    before = {"jobs": analyzed()[0]}
    submit_array(1000)
    assert analyzed_once_more(before, timeout=60)
    ((plan,),) = rows("EXPLAIN (FORMAT JSON) SELECT job_id FROM jobs WHERE state = 'Waiting'")
    expected = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]["Plan Rows"]
    assert 500 <= expected <= 2000
