"""The scheduler's database round trip (``run_scheduler``) against real PostgreSQL, without workers.

Jobs go in through the head's own admission, the round runs in-process, and
the assertions read OAR's tables: ``toLaunch`` with assigned resources,
predictions in ``gantt_jobs_predictions`` / ``gantt_jobs_resources``,
reservations waiting for their acknowledgement, scheduler messages, and
besteffort jobs fragged before the job that needs their place starts.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import event, text

from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.databases import oar_database

pytestmark = pytest.mark.timeout(120)

TABLES = (
    "jobs", "job_types", "job_dependencies", "moldable_job_descriptions", "job_resource_groups",
    "job_resource_descriptions", "assigned_resources", "gantt_jobs_predictions", "gantt_jobs_resources",
    "frag_jobs", "event_logs", "job_state_logs",
)


@pytest.fixture(scope="module")
def database(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database with 2 hosts x 2 cores, this process configured to use it."""
    url = create_pg_database()
    try:
        with oar_database(url, redis_url, tmp_path_factory.mktemp("scheduling-db")):
            yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def db(database: str) -> Iterator[str]:
    from oar_celery.db.session import session_scope

    yield database
    with session_scope() as session:
        session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def submit(**request: Any) -> int:
    from oar_celery.config import settings
    from oar_celery.db.session import now, session_scope
    from oar_celery.head.lib import admission

    request = {"user": "alice", "command": "true", "directory": "/tmp", **request}
    with session_scope() as session:
        checked = admission.check(session, request, settings())
        return admission.insert(session, checked, at=now())[0]


def rows(sql: str, **params: Any) -> list[Any]:
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        result = session.execute(text(sql), params)
        return list(result) if result.returns_rows else []


def state(job_id: int) -> str:
    return rows("SELECT state FROM jobs WHERE job_id = :id", id=job_id)[0][0]


def predictions() -> dict[int, tuple[float, int]]:
    """job id → (predicted start, number of predicted resources)."""
    found = rows(
        "SELECT m.moldable_job_id, p.start_time, count(r.resource_id) FROM gantt_jobs_predictions p "
        "JOIN moldable_job_descriptions m ON m.moldable_id = p.moldable_job_id "
        "LEFT JOIN gantt_jobs_resources r ON r.moldable_job_id = p.moldable_job_id "
        "GROUP BY m.moldable_job_id, p.start_time"
    )
    return {job_id: (start, count) for job_id, start, count in found}


def schedule() -> Any:
    from oar_celery.head.lib.context import process_context
    from oar_celery.head.scheduling import run_scheduler

    return run_scheduler(process_context())


def set_state(job_id: int, new: str) -> None:
    rows("UPDATE jobs SET state = :s, start_time = :t WHERE job_id = :id", s=new, t=time.time(), id=job_id)


def test_launches_and_predictions_with_conservative_backfilling(db: str) -> None:
    first = submit(resources=["/nodes=2,walltime=1:00:00"])
    second = submit(resources=["/nodes=2,walltime=1:00:00"])
    third = submit(resources=["/resource_id=1,walltime=0:30:00"])
    at = time.time()
    outcome = schedule()
    assert outcome.launched == [first]
    assert state(first) == "toLaunch"
    assert rows("SELECT count(*) FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = "
                "a.moldable_job_id WHERE j.job_id = :id", id=first)[0][0] == 4
    predicted = predictions()
    assert set(predicted) == {second, third}
    assert predicted[second][1] == 4 and predicted[third][1] == 1
    assert at + 3600 - 2 <= predicted[second][0] <= at + 3600 + 2
    assert predicted[third][0] >= predicted[second][0] + 3600
    # a second round changes nothing and launches nothing twice
    again = schedule()
    assert again.launched == []
    replaced = predictions()
    assert set(replaced) == set(predicted)
    assert all(abs(replaced[j][0] - predicted[j][0]) <= 2 and replaced[j][1] == predicted[j][1] for j in replaced)


def test_held_job_holds_no_place(db: str) -> None:
    running = submit(resources=["/nodes=2,walltime=1:00:00"])
    schedule()
    set_state(running, "Running")
    held = submit(resources=["/nodes=2,walltime=1:00:00"], hold=True)
    later = submit(resources=["/nodes=1,walltime=0:10:00"])
    schedule()
    predicted = predictions()
    assert held not in predicted
    assert predicted[later][0] <= time.time() + 3600 + 2
    rows("UPDATE jobs SET state = 'Waiting' WHERE job_id = :id", id=held)
    schedule()
    predicted = predictions()
    assert predicted[later][0] >= predicted[held][0] + 3600


def test_reservations_accepted_then_refused_when_the_window_is_taken(db: str) -> None:
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() + 600))
    granted = submit(resources=["/nodes=2,walltime=0:20:00"], reservation=start)
    refused = submit(resources=["/nodes=1,walltime=0:20:00"], reservation=start)
    outcome = schedule()
    assert state(granted) == "toAckReservation"
    job = rows("SELECT reservation, start_time FROM jobs WHERE job_id = :id", id=granted)[0]
    assert job[0] == "Scheduled" and abs(job[1] - time.mktime(time.strptime(start, "%Y-%m-%d %H:%M:%S"))) < 1
    assert predictions()[granted][1] == 4
    assert refused in outcome.refused and state(refused) == "toError"
    # the accepted reservation keeps blocking its window in later rounds
    other = submit(resources=["/nodes=1,walltime=1:00:00"])
    schedule()
    assert predictions()[other][0] >= job[1] + 1200


def test_failed_dependency_keeps_the_job_waiting_with_oar_message(db: str) -> None:
    """OAR3 kao/scheduling: a required job Terminated with a non-zero exit code blocks for good."""
    failed = submit()
    rows("UPDATE jobs SET state = 'Terminated', exit_code = 768 WHERE job_id = :id", id=failed)
    dependent = submit(dependencies=[failed])
    schedule()
    assert state(dependent) == "Waiting"
    info = rows("SELECT scheduler_info FROM jobs WHERE job_id = :id", id=dependent)[0][0]
    assert info == (f"Cannot determine scheduling time due to dependency with the job {failed} "
                    "(Terminated with exit code 3)")
    assert dependent not in predictions()


def test_dependency_on_a_job_in_error_is_ignored(db: str) -> None:
    """OAR3 kao/scheduling: 'a dependency with job in Error is ignored (same behavior that OAR2)'."""
    errored = submit()
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :id", id=errored)
    dependent = submit(dependencies=[errored])
    schedule()
    assert state(dependent) == "toLaunch"


def test_besteffort_is_fragged_and_the_job_waits_until_it_is_gone(db: str) -> None:
    besteffort = submit(resources=["/nodes=2,walltime=1:00:00"], types=["besteffort"])
    assert schedule().launched == [besteffort]
    set_state(besteffort, "Running")
    normal = submit(resources=["/nodes=1,walltime=0:10:00"])
    outcome = schedule()
    assert outcome.besteffort_killed == [besteffort]
    assert state(normal) == "Waiting"
    assert rows("SELECT frag_state FROM frag_jobs WHERE frag_id_job = :id", id=besteffort)[0][0] == "LEON"
    assert schedule().besteffort_killed == []  # fragged once
    assert state(normal) == "Waiting"
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :id", id=besteffort)
    rows("UPDATE assigned_resources SET assigned_resource_index = 'LOG'")
    assert schedule().launched == [normal]


def test_statements_do_not_grow_with_the_number_of_jobs(db: str) -> None:
    from oar_celery.db.session import get_engine

    def statements_for(count: int) -> int:
        rows("TRUNCATE jobs, moldable_job_descriptions, job_resource_groups, job_resource_descriptions, "
             "assigned_resources, job_state_logs RESTART IDENTITY CASCADE")
        for _ in range(count):
            submit(resources=["/resource_id=1,walltime=0:10:00"])
        seen: list[str] = []

        def count_statement(*args: Any) -> None:
            seen.append(args[2])

        event.listen(get_engine(), "before_cursor_execute", count_statement)
        try:
            schedule()
        finally:
            event.remove(get_engine(), "before_cursor_execute", count_statement)
        return len(seen)

    assert statements_for(60) == statements_for(6)


def test_timesharing_shares_with_compatible_jobs_only(db: str) -> None:
    mine = [submit(resources=["/nodes=2,walltime=0:10:00"], types=["timesharing=user,*"]) for _ in range(2)]
    theirs = submit(user="bob", resources=["/nodes=2,walltime=0:10:00"], types=["timesharing=user,*"])
    anyone = [submit(user=u, resources=["/nodes=2,walltime=0:10:00"], types=["timesharing=*,*"]) for u in "cd"]
    launched = schedule().launched
    assert set(mine) <= set(launched) and theirs not in launched
    assert not set(anyone) & set(launched)
    # bob's job and the ``*,*`` pair each wait for the cluster; the pair shares one slot
    assert date_of(theirs) >= time.time() + 600 - 2
    assert date_of(anyone[0]) == date_of(anyone[1]) >= time.time() + 600 - 2


def date_of(job_id: int) -> float:
    return predictions()[job_id][0]


def test_reservation_starting_on_besteffort_jobs_kills_them_first(db: str) -> None:
    besteffort = submit(resources=["/nodes=2,walltime=1:00:00"], types=["besteffort"])
    assert schedule().launched == [besteffort]
    set_state(besteffort, "Running")
    start = int(time.time()) + 3
    reservation = submit(
        resources=["/nodes=1,walltime=0:10:00"], reservation=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))
    )
    assert schedule().besteffort_killed == []  # the reservation is in the future
    assert state(reservation) == "toAckReservation"
    rows("UPDATE jobs SET state = 'Waiting' WHERE job_id = :id", id=reservation)  # the client was told
    time.sleep(max(0.0, start - time.time() + 0.1))
    outcome = schedule()
    assert outcome.besteffort_killed == [besteffort] and reservation not in outcome.launched
    assert rows("SELECT frag_state FROM frag_jobs WHERE frag_id_job = :id", id=besteffort)[0][0] == "LEON"
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :id", id=besteffort)
    rows("UPDATE assigned_resources SET assigned_resource_index = 'LOG'")
    assert schedule().launched == [reservation]


def test_rewriting_only_the_changed_predictions_stores_the_whole_gantt(db: str) -> None:
    """A round that moves few predictions rewrites only those; what is stored equals a full rewrite."""
    from oar_celery.head.lib import gantt_writes

    jobs = [submit(resources=["/nodes=1,walltime=1:00:00"]) for _ in range(8)]
    schedule()
    held = jobs[-1]
    rows("UPDATE jobs SET state = 'Hold' WHERE job_id = :id", id=held)
    schedule()  # one prediction goes: the diff path
    partial = predictions()
    assert held not in partial and set(partial) >= set(jobs[2:-1])
    gantt_writes._last = None
    schedule()
    assert same_gantt(predictions(), partial)
    rows("UPDATE jobs SET state = 'Waiting' WHERE job_id = :id", id=held)
    rows("DELETE FROM gantt_jobs_resources WHERE moldable_job_id = (SELECT min(moldable_job_id)"
         " FROM gantt_jobs_resources)")  # someone else touched the tables: the next round rewrites them all
    schedule()
    again = predictions()
    gantt_writes._last = None
    schedule()
    assert same_gantt(predictions(), again) and held in again


def same_gantt(one: dict[int, tuple[float, int]], other: dict[int, tuple[float, int]]) -> bool:
    """The same jobs on as many resources, starting within the second the rounds may be apart."""
    return one.keys() == other.keys() and all(
        one[j][1] == other[j][1] and abs(one[j][0] - other[j][0]) <= 2 for j in one
    )


def quick() -> Any:
    from oar_celery.head.lib.context import process_context
    from oar_celery.head.quick_round import run_quick_round

    return run_quick_round(process_context())


def test_quick_round_starts_the_first_waiting_jobs_on_the_free_resources(db: str) -> None:
    running = submit(resources=["/resource_id=1,walltime=1:00:00"])
    schedule()
    set_state(running, "Running")
    waiting = [submit(resources=["/resource_id=1,walltime=0:10:00"]) for _ in range(5)]
    schedule()
    assert set(predictions()) == set(waiting[3:])
    outcome = quick()
    assert outcome.launched == []  # the three free cores are already taken by the full round
    for job_id in waiting[:3]:
        set_state(job_id, "Terminated")
    rows("UPDATE assigned_resources SET assigned_resource_index = 'LOG' WHERE moldable_job_id IN "
         "(SELECT assigned_moldable_job FROM jobs WHERE state = 'Terminated')")
    node_queues = redis.Redis.from_url(os.environ["OAR_BROKER_URL"])
    node_queues.delete("oar.node.node1", "oar.node.node2")
    assert sorted(quick().launched) == waiting[3:]
    assert predictions() == {}  # the started jobs' predictions are gone
    assert {state(job_id) for job_id in waiting[3:]} == {"Launching"}  # the Runner's step, in the same transaction
    sent = [json.loads(base64.b64decode(json.loads(raw)["body"]))[1]["specs"]
            for queue in ("oar.node.node1", "oar.node.node2") for raw in node_queues.lrange(queue, 0, -1)]
    assert sorted(spec["job_id"] for specs in sent for spec in specs) == waiting[3:]


def test_quick_round_never_lets_a_later_job_delay_an_earlier_one(db: str) -> None:
    running = submit(resources=["/resource_id=2,walltime=1:00:00"])
    schedule()
    set_state(running, "Running")
    wide = submit(resources=["/resource_id=4,walltime=1:00:00"])  # waits for the running job
    long = submit(resources=["/resource_id=1,walltime=2:00:00"])  # would delay it: must not start
    short = submit(resources=["/resource_id=1,walltime=0:10:00"])  # outside the prefix of two
    assert quick().launched == []
    assert {state(j) for j in (wide, long, short)} == {"Waiting"}
    assert schedule().launched == [short]  # the full round backfills what the quick one left


def test_quick_round_leaves_reservations_besteffort_and_dependencies_to_the_full_round(db: str) -> None:
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() + 600))
    reservation = submit(resources=["/nodes=1,walltime=0:20:00"], reservation=start)
    assert quick() is None
    schedule()
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :id", id=reservation)
    first = submit(resources=["/nodes=1,walltime=1:00:00"])
    dependent = submit(dependencies=[first])
    schedule()
    set_state(first, "Running")
    assert quick() is None  # a node is free, but the dependent job needs the full round
    rows("UPDATE jobs SET state = 'Terminated' WHERE job_id = :id", id=first)
    rows("UPDATE assigned_resources SET assigned_resource_index = 'LOG'")
    besteffort = submit(resources=["/nodes=1,walltime=1:00:00"], types=["besteffort"])
    rows("UPDATE jobs SET state = 'Error' WHERE job_id = :id", id=dependent)
    schedule()
    set_state(besteffort, "Running")
    submit(resources=["/nodes=2,walltime=0:10:00"])
    assert quick() is None  # a besteffort job may have to be killed: the full round decides


def quick_with(**changes: Any) -> Any:
    """A quick round with these settings changed (karma, quotas)."""
    from oar_celery.config import settings
    from oar_celery.head.lib.context import Context
    from oar_celery.head.quick_round import run_quick_round
    from oar_celery.protocol.bus import broker_redis

    return run_quick_round(Context(settings().replace(**changes), broker_redis()))


def forget_launches() -> None:
    redis.Redis.from_url(os.environ["OAR_BROKER_URL"]).delete("oar.node.node1", "oar.node.node2")


def running_on(cores: int, user: str = "carol") -> int:
    """A running job of ``user`` on ``cores`` cores, its predictions gone."""
    job_id = submit(user=user, resources=[f"/resource_id={cores},walltime=1:00:00"])
    schedule()
    set_state(job_id, "Running")
    rows("TRUNCATE gantt_jobs_predictions, gantt_jobs_resources")
    return job_id


def test_quick_round_takes_the_first_jobs_in_karma_order(db: str) -> None:
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import accounting

    running_on(3)
    alice = submit(user="alice", resources=["/resource_id=1,walltime=0:10:00"])  # first come, but used a lot
    bob = submit(user="bob", resources=["/resource_id=1,walltime=0:10:00"])
    day = int(time.time()) // 86400 * 86400
    with session_scope() as session:
        accounting.add_consumptions(session, {(day, day + 86399, "alice", "", "default", kind): 36000
                                              for kind in ("ASKED", "USED")})
    try:
        karma = {"fairsharing_enabled": True, "scheduler_fairsharing_user_targets": "{alice => 50, bob => 50}"}
        assert quick_with(**karma).launched == [bob]  # the one free core goes to the lower karma
        assert (state(alice), state(bob)) == ("Waiting", "Launching")
        assert rows("SELECT last_karma FROM jobs WHERE job_id = :id", id=bob)[0][0] < 0  # oarstat -f shows it
    finally:
        rows("TRUNCATE accounting")
        forget_launches()


def test_quick_round_without_karma_keeps_first_come_first_served(db: str) -> None:
    running_on(3)
    alice = submit(user="alice", resources=["/resource_id=1,walltime=0:10:00"])
    submit(user="bob", resources=["/resource_id=1,walltime=0:10:00"])
    try:
        assert quick_with().launched == [alice]
    finally:
        forget_launches()


def test_quick_round_holds_a_job_over_its_quota_and_starts_the_others(db: str, tmp_path: Any) -> None:
    path = tmp_path / "quotas.json"
    path.write_text(json.dumps({"quotas": {"*,*,*,/": [1, -1, -1]}}))
    running_on(1, user="alice")  # alice's one core is in use
    alice = submit(user="alice", resources=["/resource_id=1,walltime=0:10:00"])
    bob = submit(user="bob", resources=["/resource_id=1,walltime=0:10:00"])
    bob_too_big = submit(user="bob", resources=["/resource_id=2,walltime=0:10:00"])  # alone over bob's quota
    try:
        outcome = quick_with(quotas=True, quotas_conf_file=str(path))
        assert outcome.launched == [bob]
        assert {state(j) for j in (alice, bob_too_big)} == {"Waiting"}
        # the full round agrees, and says why the others wait
        from oar_celery.config import settings
        from oar_celery.head.lib.context import Context
        from oar_celery.head.scheduling import run_scheduler
        from oar_celery.protocol.bus import broker_redis

        config = settings().replace(quotas=True, quotas_conf_file=str(path))
        assert run_scheduler(Context(config, broker_redis())).launched == []
        assert "rule (*,*,*,/), limit 1" in rows("SELECT scheduler_info FROM jobs WHERE job_id = :id", id=alice)[0][0]
    finally:
        forget_launches()


def test_a_round_clears_the_old_message_of_a_job_it_places_later_and_keeps_the_others(db: str) -> None:
    first = submit(resources=["/nodes=2,walltime=1:00:00"])
    later = submit(resources=["/nodes=2,walltime=1:00:00"])
    held = submit(resources=["/nodes=2,walltime=1:00:00"], hold=True)
    rows("UPDATE jobs SET scheduler_info = 'stale' WHERE job_id IN (:a, :b)", a=later, b=held)
    schedule()
    assert state(first) == "toLaunch" and later in predictions()
    messages = rows("SELECT job_id, scheduler_info FROM jobs WHERE job_id IN (:a, :b) ORDER BY job_id", a=later, b=held)
    assert messages == [(later, ""), (held, "stale")]  # a held job is no waiting job: its message stays


def test_reservations_accepted_in_one_round_each_keep_their_own_start_and_moldable(db: str) -> None:
    at = int(time.time()) // 60 * 60
    starts = [at + 1200, at + 3600]
    ids = [submit(resources=["/nodes=1,walltime=0:20:00"],
                  reservation=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))) for start in starts]
    schedule()
    found = rows("SELECT j.job_id, j.state, j.reservation, j.start_time, m.moldable_job_id FROM jobs j "
                 "JOIN moldable_job_descriptions m ON m.moldable_id = j.assigned_moldable_job ORDER BY j.job_id")
    assert found == [(job_id, "toAckReservation", "Scheduled", float(start), job_id)
                     for job_id, start in zip(ids, starts, strict=True)]
    assert rows("SELECT count(*) FROM event_logs WHERE type = 'RESERVATION_ACCEPTED'") == [(2,)]
