"""The metrics' counters start with the head's process, before the first scrape (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

from tests.integration.test_scheduling_db import database, db  # noqa: F401


def submit(count: int) -> None:
    from oar_celery.head.lib.submission import submit_requests

    submit_requests([{"user": "alice", "command": "true", "directory": "/tmp"} for _ in range(count)])


def sample(collector: Any, name: str, **labels: str) -> float:
    for family in collector.collect():
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"{name}{labels} not collected")


def test_jobs_submitted_after_the_collector_is_warm_and_before_the_first_scrape_are_counted(db: str) -> None:  # noqa: F811
    from oar_celery.head.metrics import OarCollector

    submit(2)  # before the process's collector: not counted, as before any process start
    collector = OarCollector()
    collector.warm()
    submit(3)
    assert sample(collector, "oar_jobs_submitted_total", queue="default") == 3
    assert sample(collector, "oar_jobs", state="Waiting", queue="default") == 5
