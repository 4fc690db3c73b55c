"""A burst of submissions refreshes PostgreSQL's statistics of the jobs table at once."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_scheduling_db import database, db, rows  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def analyzed(table: str = "jobs") -> tuple[int, float]:
    """How many times ``table`` was analyzed by hand, and the row count the planner believes."""
    (count,) = rows("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t", t=table)[0]
    (tuples,) = rows("SELECT reltuples FROM pg_class WHERE relname = :t", t=table)[0]
    return count, tuples


def analyzed_once_more(before: dict[str, int], timeout: float = 10.0) -> bool:
    """Wait for every table to be analyzed once more than ``before`` says (the refresh runs in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {table: analyzed(table)[0] for table in before}
        if all(counts[table] == before[table] + 1 for table in before):
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
    for table in statistics.TABLES:
        assert analyzed(table)[1] >= 2 * statistics.BURST - 1, table


def test_bursts_in_quick_succession_analyze_once(db: str, monkeypatch) -> None:  # noqa: F811
    from oar_celery.db import statistics

    monkeypatch.setattr(statistics, "_last_refresh", float("-inf"))
    before = {"jobs": analyzed()[0]}
    submit_array(statistics.BURST)
    submit_array(statistics.BURST)
    assert analyzed_once_more(before)
    time.sleep(0.5)
    assert analyzed()[0] == before["jobs"] + 1


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
