"""Almighty's cycle tasks against a real Redis: one task runs cycles while messages keep coming.

The modules a cycle runs are replaced by functions that record their calls
(each module has tests of its own); what is checked here is the coordination:
the pending set, the ``QUEUED`` flag, the lock, and the messages pushed on the
head's queue in Celery's format.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from oar_celery.celery_app import HEAD_QUEUE
from oar_celery.head import almighty
from oar_celery.head.lib.context import Context, process_context
from oar_celery.protocol import bus
from oar_celery.protocol.names import Key

KEYS = (Key.PENDING, Key.QUEUED, Key.LOCK, Key.LAST_SCHEDULER_RUN, Key.DELAYED,
        Key.CYCLES, HEAD_QUEUE)


@pytest.fixture
def client(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    from oar_celery.config import settings

    monkeypatch.setenv("OAR_BROKER_URL", redis_url)
    monkeypatch.setenv("OAR_SCHEDULER_MIN_TIME", "30")
    settings.cache_clear()
    connection = redis.Redis.from_url(redis_url)
    connection.delete(*KEYS)
    yield connection
    connection.delete(*KEYS)
    settings.cache_clear()


class Recorded(list[str]):
    """The names of the modules run, in order; ``almighty`` runs the module table that records them."""

    almighty: almighty.Almighty


def use_modules(monkeypatch: pytest.MonkeyPatch, **behaviour: Callable[[], object]) -> Recorded:
    """A module table of recorders (plus ``behaviour``): each module only notes that it ran."""
    ran = Recorded()

    def recorder(name: str) -> Callable[[], object]:
        def run(_: Context) -> object:
            ran.append(name)
            return behaviour[name]() if name in behaviour else None

        return run

    ran.almighty = almighty.Almighty(process_context(), {name: recorder(name) for name in almighty.ORDER})
    return ran


def head_tasks(client: redis.Redis) -> list[tuple[str, dict[str, Any], str | None]]:
    """The tasks waiting on the head's queue, oldest first: name, keyword arguments, ETA."""
    tasks = []
    for raw in reversed(client.lrange(HEAD_QUEUE, 0, -1)):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], kwargs, message["headers"]["eta"]))
    return tasks


def test_a_notify_sends_one_cycle_task_until_a_cycle_task_starts(client: redis.Redis) -> None:
    assert bus.notify(["Qsub"]) is True
    assert bus.notify(["Term", "NotAMessage"]) is False
    assert bus.notify(["NotAMessage"]) is False
    assert [name for name, _, _ in head_tasks(client)] == ["oar.almighty.cycle"]
    assert {m.decode() for m in client.smembers(Key.PENDING)} == {"Qsub", "Term"}


def test_messages_that_come_during_a_cycle_are_run_by_the_same_task(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_during_cycle: list[bool] = []

    def a_node_reports_twice() -> None:
        if len(sent_during_cycle) < 2:
            sent_during_cycle.append(bus.notify(["Term"]))

    ran = use_modules(monkeypatch, reports=a_node_reports_twice)
    bus.notify(["Qsub"])
    client.delete(HEAD_QUEUE)
    assert ran.almighty.cycles() == 3
    assert sent_during_cycle == [False, False]  # the running task held QUEUED: no task was sent
    assert ran.count("reports") == 3
    assert ran.count("scheduler") == 1 and ran.count("quick_scheduler") == 3  # one before the full round
    assert ran.count("runner") == 1  # after the full round; the quick rounds launch their own jobs
    assert not client.exists(Key.QUEUED) and not client.scard(Key.PENDING)


def test_too_soon_for_a_full_round_a_quick_round_runs_and_scheduling_is_asked_for_later(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = use_modules(monkeypatch)
    client.set(Key.LAST_SCHEDULER_RUN, "0")
    assert ran.almighty.cycle() == ["reports", "runner"]
    client.sadd(Key.PENDING, "Term")
    client.set(Key.LAST_SCHEDULER_RUN, repr(time.time()))
    assert ran.almighty.cycle() == ["reports", "quick_scheduler"]
    client.sadd(Key.PENDING, "Term")
    assert ran.almighty.cycle() == ["reports", "quick_scheduler"]
    (delayed,) = head_tasks(client)  # one delayed message for both deferrals
    assert delayed[:2] == ("oar.almighty.notify", {"messages": ["Scheduling"]}) and delayed[2] is not None
    assert "scheduler" not in ran


def test_a_task_out_of_time_hands_the_rest_to_a_new_cycle_task(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = use_modules(monkeypatch, reports=lambda: bus.notify(["Qdel"]))
    bus.notify(["Qsub"])
    client.delete(HEAD_QUEUE)
    assert modules.almighty.cycles(seconds=0) == 1
    assert [name for name, _, _ in head_tasks(client)] == ["oar.almighty.cycle"]
    assert client.exists(Key.QUEUED)
    assert {m.decode() for m in client.smembers(Key.PENDING)} == {"Qdel"}


def test_a_task_that_finds_the_lock_taken_leaves_the_messages_to_the_holder(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oar_celery.head.lib.holders import holder_token

    ran = use_modules(monkeypatch)
    client.set(Key.LOCK, holder_token())  # a live holder: this very process
    bus.notify(["Qsub"])
    client.delete(HEAD_QUEUE)
    assert ran.almighty.cycles() == 0
    assert ran == [] and head_tasks(client) == []
    assert {m.decode() for m in client.smembers(Key.PENDING)} == {"Qsub"}


def test_every_cycle_records_the_time_each_module_took(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    modules = use_modules(monkeypatch)
    bus.notify(["Villains"])
    modules.almighty.cycles()
    entry = json.loads(client.lindex(Key.CYCLES, 0))
    assert entry["modules"] == ["reports", "sarko", "runner"]  # the first cycle of the process checks the Runner
    assert set(entry["took"]) == {"reports", "sarko", "runner"}
    assert all(seconds >= 0 for seconds in entry["took"].values())


def test_a_new_job_gets_a_quick_round_before_the_full_round(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = use_modules(monkeypatch)
    bus.notify(["Qsub"])
    assert ran.almighty.cycle() == ["reports", "quick_scheduler", "scheduler", "runner"]
    client.set(Key.LAST_SCHEDULER_RUN, "0")
    client.sadd(Key.PENDING, "Scheduling")  # a tick: nothing new can start, the full round alone
    assert ran.almighty.cycle() == ["reports", "scheduler", "runner"]


def test_the_runner_runs_after_a_full_round_and_otherwise_once_a_second(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = use_modules(monkeypatch)
    assert "runner" in ran.almighty.cycle()  # the process's first check
    client.sadd(Key.PENDING, "Reports")
    assert ran.almighty.cycle() == ["reports"]
    client.sadd(Key.PENDING, "Scheduling")  # OAR_SCHEDULER_MIN_TIME is 30 s, but no round ran yet
    assert ran.almighty.cycle() == ["reports", "scheduler", "runner"]
    ran.almighty.next_runner_check = time.monotonic() - 0.001  # a second later
    assert ran.almighty.cycle() == ["reports", "runner"]
    assert ran.count("runner") == 3


def test_a_cycle_takes_over_the_lock_of_a_dead_holder_on_this_host(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    modules = use_modules(monkeypatch)
    dead = f"{socket.gethostname()}:999999:0"  # no such pid
    client.set(Key.LOCK, dead)
    bus.notify(["Qsub"])
    assert modules.almighty.cycle() == ["reports", "quick_scheduler", "scheduler", "runner"]
    assert not client.exists(Key.LOCK)  # released at the end, as any cycle's
