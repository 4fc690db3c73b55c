"""Quotas in the scheduler's database round trip: the over-quota job waits and its scheduler_info names the rule.

In-process on real PostgreSQL (2 hosts x 2 cores), with a clock the test
sets (the head's ``Context``): jobs go in through admission, rounds run with
quotas read from a JSON file the test writes, rewrites, and breaks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_scheduling_db import database, db, rows, state, submit  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def round_at(path: Path, at: float | None = None, **settings_changes: Any) -> Any:
    from oar_celery.config import settings
    from oar_celery.head.lib.context import Context
    from oar_celery.head.scheduling import run_scheduler
    from oar_celery.protocol.bus import broker_redis

    config = settings().replace(quotas=True, quotas_conf_file=str(path), **settings_changes)
    moment = time.time() if at is None else at
    return run_scheduler(Context(config, broker_redis(), clock=lambda: moment))


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))
    stamp = time.time_ns() + 10**9 * int(path.stat().st_size)  # a new version even within one mtime tick
    os.utime(path, ns=(stamp, stamp))


def info(job_id: int) -> str:
    return rows("SELECT scheduler_info FROM jobs WHERE job_id = :id", id=job_id)[0][0]


@pytest.mark.parametrize(("rule", "limits", "expected"), [
    ("*,*,*,/", [1, -1, -1], "nb resources quotas failed, rule (*,*,*,/), limit 1"),
    ("*,*,*,alice", [-1, 1, -1], "nb jobs quotas failed, rule (*,*,*,alice), limit 1"),
    ("default,*,*,*", [-1, -1, 1], "resources hours quotas failed, rule (default,*,*,*), limit 1"),
    ("*,proj1,*,*", [1, -1, -1], "nb resources quotas failed, rule (*,proj1,*,*), limit 1"),
])
def test_each_quota_kind_keeps_the_over_quota_job_waiting_and_names_the_rule(
    db: str, tmp_path: Path, rule: str, limits: list[int], expected: str  # noqa: F811
) -> None:
    path = tmp_path / "quotas.json"
    write(path, {"quotas": {rule: limits}})
    first = submit(user="alice", project="proj1", resources=["/core=1,walltime=1:00:00"])
    second = submit(user="alice", project="proj1", resources=["/core=1,walltime=1:00:00"])
    rows("INSERT INTO queues (queue_name, priority, scheduler_policy, state) VALUES ('other', 2, 'kamelot', 'Active') "
         "ON CONFLICT DO NOTHING")
    other = submit(user="bob", queue="other", resources=["/core=1,walltime=0:30:00"])  # in no rule's count
    round_at(path)
    assert (state(first), state(second), state(other)) == ("toLaunch", "Waiting", "toLaunch")
    assert info(second) == f"Quotas limitation reached: {expected}"
    assert info(first) == "" and info(other) == ""


def test_a_job_type_quota_counts_the_jobs_of_that_type(db: str, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "quotas.json"
    write(path, {"quotas": {"*,*,besteffort,*": [1, -1, -1]}, "job_types": ["besteffort"]})
    first = submit(user="alice", queue="besteffort", types=["besteffort"], resources=["/core=1"])
    second = submit(user="bob", queue="besteffort", types=["besteffort"], resources=["/core=1"])
    round_at(path)
    assert (state(first), state(second)) == ("toLaunch", "Waiting")
    assert "rule (*,*,besteffort,*)" in info(second)


def monday(hour: int, minute: int = 0) -> float:
    return time.mktime((2027, 1, 4, hour, minute, 0, 0, 0, -1))


def test_a_temporal_quota_changes_at_its_period_boundary(db: str, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "quotas.json"
    write(path, {"periodical": [["08:00-19:00 mon-fri * *", "day", "office"], ["* * * *", "night", "otherwise"]],
                 "day": {"*,*,*,/": [1, -1, -1]}, "night": {"*,*,*,/": [4, -1, -1]}})
    ids = [submit(user="alice", resources=["/core=1,walltime=0:20:00"]) for _ in range(2)]
    rows("UPDATE jobs SET submission_time = :t", t=monday(18))
    round_at(path, monday(18, 55))
    assert [state(i) for i in ids] == ["toLaunch", "Waiting"]
    predicted = rows("SELECT p.start_time FROM gantt_jobs_predictions p JOIN moldable_job_descriptions m "
                     "ON m.moldable_id = p.moldable_job_id WHERE m.moldable_job_id = :id", id=ids[1])
    assert predicted == [(monday(19),)]
    round_at(path, monday(18, 59))
    assert state(ids[1]) == "Waiting"
    round_at(path, monday(19, 0) + 1)
    assert state(ids[1]) == "toLaunch"


def test_the_rules_are_read_again_when_the_file_changes_and_a_broken_file_keeps_the_last(
    db: str, tmp_path: Path  # noqa: F811
) -> None:
    path = tmp_path / "quotas.json"
    write(path, {"quotas": {"*,*,*,*": [1, -1, -1]}})
    ids = [submit(user="alice", resources=["/core=1"]) for _ in range(3)]
    round_at(path)
    assert [state(i) for i in ids] == ["toLaunch", "Waiting", "Waiting"]
    path.write_text("{not json")
    os.utime(path, ns=(time.time_ns() + 5 * 10**9,) * 2)
    round_at(path)
    assert [state(i) for i in ids] == ["toLaunch", "Waiting", "Waiting"]
    write(path, {"quotas": {"*,*,*,*": [2, -1, -1]}})
    round_at(path)
    assert [state(i) for i in ids] == ["toLaunch", "toLaunch", "Waiting"]
    assert "limit 2" in info(ids[2])


def test_a_waiting_job_placed_by_a_later_round_forgets_why_it_waited(db: str, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "quotas.json"
    write(path, {"quotas": {"*,*,*,/": [1, -1, -1]}})
    running = submit(user="alice", resources=["/core=1,walltime=1:00:00"])
    held = [submit(user="alice", resources=["/core=1,walltime=1:00:00"]) for _ in range(2)]
    round_at(path)
    assert state(running) == "toLaunch"
    assert {info(j) for j in held} == {"Quotas limitation reached: nb resources quotas failed, rule (*,*,*,/), limit 1"}
    write(path, {"quotas": {"*,*,*,/": [2, -1, -1]}})
    round_at(path)  # one of them is placed now and launched, the other waits on the new limit
    assert [state(j) for j in held] == ["toLaunch", "Waiting"]
    assert info(held[0]) == "" and "limit 2" in info(held[1])
    write(path, {"quotas": {"*,*,*,/": [-1, -1, -1]}})
    round_at(path)
    assert state(held[1]) == "toLaunch" and info(held[1]) == ""
