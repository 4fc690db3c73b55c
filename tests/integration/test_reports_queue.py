"""Node reports queued for the Almighty cycle: applied all at once, kept until committed, idempotent.

Nodes (or the head's ``oar.head.reports`` task) queue batches in Redis; the next
cycle applies every queued batch in one transaction (``apply_queued``). These
tests play that cycle in-process against real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from oar_celery.head.lib.context import process_context
from tests.integration.test_scheduling_db import database, db, rows, schedule, state, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def queue(db: str, redis_url: str) -> Iterator[redis.Redis]:  # noqa: F811 - the fixture, imported above
    from oar_celery.protocol.names import Key

    client = redis.Redis.from_url(redis_url)
    client.delete(Key.QUEUED_REPORTS)
    yield client
    client.delete(Key.QUEUED_REPORTS)


def launching(count: int) -> list[int]:
    job_ids = [submit(resources=["/resource_id=1,walltime=0:10:00"]) for _ in range(count)]
    schedule()
    rows("UPDATE jobs SET state = 'Launching' WHERE job_id = ANY(:ids)", ids=job_ids)
    return job_ids


def ran(job_id: int, code: int = 0) -> list[dict[str, object]]:
    return [
        {"kind": "running", "job_id": job_id, "host": "node1", "pid": 42},
        {"kind": "ended", "job_id": job_id, "host": "node1", "exit_code": code, "reason": "exited", "message": ""},
    ]


def test_every_queued_batch_is_applied_by_one_cycle_then_dropped(queue: redis.Redis) -> None:
    from oar_celery.head.reports import apply_queued
    from oar_celery.protocol.names import Key

    first, second, third = launching(3)
    for job_id, code in ((first, 0), (second, 0), (third, 3)):
        queue.rpush(Key.QUEUED_REPORTS, json.dumps(ran(job_id, code)))
    applied = apply_queued(process_context())
    assert sorted(e.job_id for e in applied.ended) == [first, second, third]
    # OAR3: the job that exited 3 is Terminated too, its exit code kept as a wait status
    assert [state(j) for j in (first, second, third)] == ["Terminated", "Terminated", "Terminated"]
    assert rows("SELECT exit_code FROM jobs WHERE job_id = :id", id=third)[0][0] == 768
    assert queue.llen(Key.QUEUED_REPORTS) == 0
    logged = rows("SELECT job_state FROM job_state_logs WHERE job_id = :id ORDER BY date_start, job_state", id=first)
    assert [s for (s,) in logged][-2:] == ["Running", "Terminated"]


def test_a_batch_applied_twice_changes_nothing_and_a_bad_one_blocks_nothing(queue: redis.Redis) -> None:
    from oar_celery.head.reports import apply_queued
    from oar_celery.protocol.names import Key

    (job_id,) = launching(1)
    queue.rpush(Key.QUEUED_REPORTS, json.dumps(ran(job_id)))
    apply_queued(process_context())
    before = rows("SELECT state, stop_time, (SELECT count(*) FROM job_state_logs WHERE job_id = :id)"
                  " FROM jobs WHERE job_id = :id", id=job_id)
    queue.rpush(Key.QUEUED_REPORTS, b"{not json", json.dumps(ran(job_id)))
    assert apply_queued(process_context()).ended == []
    assert queue.llen(Key.QUEUED_REPORTS) == 0
    assert rows("SELECT state, stop_time, (SELECT count(*) FROM job_state_logs WHERE job_id = :id)"
                " FROM jobs WHERE job_id = :id", id=job_id) == before


def test_batches_stay_queued_when_the_transaction_fails(queue: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from oar_celery.head import reports
    from oar_celery.protocol.names import Key

    (job_id,) = launching(1)
    queue.rpush(Key.QUEUED_REPORTS, json.dumps(ran(job_id)))

    def database_down(*_: object, **__: object) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(reports, "_apply", database_down)
    with pytest.raises(RuntimeError):
        reports.apply_queued(process_context())
    assert queue.llen(Key.QUEUED_REPORTS) == 1 and state(job_id) == "Launching"
    monkeypatch.undo()
    reports.apply_queued(process_context())
    assert state(job_id) == "Terminated" and queue.llen(Key.QUEUED_REPORTS) == 0
