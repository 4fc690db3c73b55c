"""Almighty, OAR's coordinator: client messages become coordinator cycles.

A message (``Qsub``, ``Term``, ``Reports``, ``Qdel``, ``ChState``, ``Villains``,
``Finaud``, ``Scheduling``) is added to a pending set in Redis and, unless a cycle is
already on its way, a ``oar.almighty.cycle`` task is sent. A cycle takes the
cluster-wide lock, takes every pending message at once and runs the modules
they call for, in OAR's order. So a burst of a thousand ``Qsub`` messages
costs one or two cycles, never a thousand.

A cycle task that finds messages again when its cycle ends runs the next
cycle itself, for up to :data:`CYCLE_TASK_SECONDS`: under a stream of node
reports, each cycle would otherwise cost one more task through the broker,
and the reports of its jobs would wait for it. While it runs, ``QUEUED``
stays set, so messages only join the pending set.

Nothing here is the truth: every module re-reads the database, and beat sends
``Scheduling`` on a tick, so a message lost to a broker restart only delays
work. The lock expires if its holder dies, so a killed head worker never
blocks the cluster.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import redis

from oar_celery.celery_app import HEAD_QUEUE, app
from oar_celery.client.wire import push, task_message
from oar_celery.config import settings
from oar_celery.holders import holder_is_dead, holder_token

logger = logging.getLogger(__name__)

PENDING = "oar:almighty:pending"
QUEUED = "oar:almighty:queued"
LOCK = "oar:almighty:lock"
LAST_SCHEDULER_RUN = "oar:almighty:last_scheduler"
DELAYED = "oar:almighty:delayed"
CYCLES = "oar:almighty:cycles"
CYCLES_KEPT = 500
#: Seconds one cycle task may go on running cycles while messages keep coming.
CYCLE_TASK_SECONDS = 1.0
#: Seconds ``QUEUED`` outlives a cycle task that was lost or died without clearing it (each cycle renews it).
QUEUED_TTL = 5

#: Which modules each message calls for.
MODULES_FOR = {
    "Qsub": ("scheduler",),
    "Term": ("reports", "scheduler"),
    "Reports": ("reports",),
    "Scheduling": ("scheduler",),
    "Qresume": ("scheduler",),
    "Qhold": ("scheduler",),
    "Qdel": ("leon", "scheduler"),
    "ChState": ("node_change_state", "scheduler"),
    "Villains": ("sarko",),
    "Finaud": ("finaud",),
}
#: The order in which a cycle runs modules; node reports open every cycle, the Runner closes those it runs in.
ORDER = ("reports", "node_change_state", "finaud", "sarko", "leon", "scheduler", "quick_scheduler", "runner")

#: Redis list of the node report batches waiting for a cycle (JSON lists of reports).
QUEUED_REPORTS = "oar:reports"

#: Push the cycle task (ARGV[1]) unless one is on its way (``QUEUED`` set for ARGV[2] seconds).
_CYCLE_UNLESS_QUEUED = """
if redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('lpush', KEYS[3], ARGV[1])
  return 1
end
return 0
"""
#: Add the messages, then the cycle task: one round trip for both.
_NOTIFY = "redis.call('sadd', KEYS[1], unpack(ARGV, 3))" + _CYCLE_UNLESS_QUEUED
#: Queue a report batch (ARGV[3]) too, in the same round trip.
_QUEUE_REPORTS = (
    "redis.call('rpush', KEYS[4], ARGV[3])\nredis.call('sadd', KEYS[1], unpack(ARGV, 4))" + _CYCLE_UNLESS_QUEUED
)
#: Start a cycle: take the lock (or find it ours, just taken over; else nil), renew ``QUEUED``
#: if asked, take the pending messages.
_BEGIN = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and redis.call('get', KEYS[1]) ~= ARGV[1] then
  return false
end
if tonumber(ARGV[3]) > 0 then redis.call('set', KEYS[4], '1', 'EX', ARGV[3]) end
local messages = redis.call('smembers', KEYS[2])
redis.call('del', KEYS[2])
return {messages, redis.call('get', KEYS[3]) or ''}
"""
#: End a cycle: record it, release the lock if still ours, count what is pending.
_END = """
redis.call('lpush', KEYS[1], ARGV[1])
redis.call('ltrim', KEYS[1], 0, ARGV[2])
if redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end
return redis.call('scard', KEYS[3])
"""
_TAKE_OVER = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
"""


@lru_cache(maxsize=1)
def broker_redis() -> redis.Redis:
    """A Redis client on the broker, for Almighty's flags and the client replies."""
    return redis.Redis.from_url(settings().broker_url, socket_timeout=10, health_check_interval=30)


def notify(messages: Iterable[str], *, client: redis.Redis | None = None) -> bool:
    """Tell Almighty something happened; whether a cycle task was sent (at most one is on its way)."""
    names = [name for name in messages if name in MODULES_FOR]
    if not names:
        return False
    client = client or broker_redis()
    return bool(client.eval(_NOTIFY, 3, PENDING, QUEUED, HEAD_QUEUE, _cycle_task(), QUEUED_TTL, *names))


def queue_reports(reports: list[dict[str, Any]], *, client: redis.Redis | None = None) -> bool:
    """Queue a node's batch of job reports for the next cycle, and tell Almighty, in one round trip.

    Nodes on a Redis broker call this themselves: a batch then reaches the
    cycle without a head task of its own in between. Only an end frees
    resources, so only a batch with one asks for the scheduler (``Term``).
    The batch stays in :data:`QUEUED_REPORTS` until a cycle has committed it;
    whether a cycle task was sent.
    """
    client = client or broker_redis()
    ended = any(isinstance(r, dict) and r.get("kind") == "ended" for r in reports)
    keys = (PENDING, QUEUED, HEAD_QUEUE, QUEUED_REPORTS)
    message = "Term" if ended else "Reports"
    return bool(client.eval(_QUEUE_REPORTS, 4, *keys, _cycle_task(), QUEUED_TTL, json.dumps(reports), message))


def _cycle_task() -> bytes:
    """An ``oar.almighty.cycle`` task message, for the scripts that push it unless one is on its way."""
    return task_message("oar.almighty.cycle", {}, HEAD_QUEUE, ignore_result=True)


def send_head_task(client: redis.Redis, task: str, kwargs: dict[str, object] | None = None,
                   *, countdown: float | None = None) -> None:
    """Push a head task in Celery's own format, with the Redis client Almighty already holds.

    One ``LPUSH``, where ``apply_async`` would also take a producer from
    Celery's pool and send a task-sent event: Almighty sends a cycle task for
    nearly every batch of node reports.
    """
    push(client, task, kwargs or {}, HEAD_QUEUE, ignore_result=True, countdown=countdown)


@app.task(name="oar.almighty.notify", ignore_result=True)
def notify_task(messages: list[str]) -> None:
    """Beat's and the nodes' way to send Almighty a message."""
    notify(messages)


def _module_functions() -> dict[str, Callable[[], object]]:
    from oar_celery.tasks import finaud, leon, node_change_state, quick_round, reports, runner, sarko, scheduling

    return {
        "reports": reports.apply_queued,
        "node_change_state": node_change_state.run_node_change_state,
        "finaud": finaud.run_finaud,
        "sarko": sarko.run_sarko,
        "leon": leon.run_leon,
        "scheduler": scheduling.run_scheduler,
        "quick_scheduler": quick_round.run_quick_round,
        "runner": runner.run_runner,
    }


def _begin(client: redis.Redis, token: str, *, renew_queued: bool) -> tuple[set[str], float] | None:
    """Take the lock and every pending message in one round trip: the messages and the last full round.

    None if another cycle holds the lock (or its holder died: then the lock is taken over first).
    """
    ttl = int(settings().almighty_lock_ttl * 1000)
    keys = (LOCK, PENDING, LAST_SCHEDULER_RUN, QUEUED)
    renew = QUEUED_TTL if renew_queued else 0
    begun = client.eval(_BEGIN, 4, *keys, token, ttl, renew)
    if not begun and _take_over(client, token, ttl):
        begun = client.eval(_BEGIN, 4, *keys, token, ttl, renew)
    if not begun:
        return None
    members, last = begun
    return {m.decode() for m in members}, float(last) if last else 0.0


def _scheduler_wait(last_run: float) -> float:
    """Seconds before the scheduler may run again (OAR's minimum time between two calls)."""
    if not last_run:
        return 0.0
    return max(0.0, last_run + settings().scheduler_min_time - time.time())


#: Seconds between two Runner checks in cycles without a full round (this process's own clock).
RUNNER_EVERY = 1.0
_next_runner_check = 0.0


def _runner_wanted(modules: set[str]) -> bool:
    """The Runner after every full round, else once a second at most.

    Only a full round leaves jobs ``toLaunch``, ``toError`` or
    ``toAckReservation`` (a quick round launches its own jobs); the periodic
    check finds what a cycle killed before its Runner left, and the launches
    to send again.
    """
    global _next_runner_check
    if "scheduler" not in modules and time.monotonic() < _next_runner_check:
        return False
    _next_runner_check = time.monotonic() + RUNNER_EVERY
    return True


def run_cycle(client: redis.Redis) -> list[str]:
    """One coordinator cycle under the lock; the modules it ran (none if another cycle holds the lock)."""
    return _cycle(client)[0]


def _cycle(client: redis.Redis, *, renew_queued: bool = False) -> tuple[list[str], int]:
    """:func:`run_cycle`, and how many messages are pending once it has ended.

    ``renew_queued``: also keep ``QUEUED`` set for another :data:`QUEUED_TTL` seconds.
    """
    token = holder_token()
    begun = _begin(client, token, renew_queued=renew_queued)
    if begun is None:
        return [], 0
    messages, last_scheduler_run = begun
    ran: dict[str, float] = {}
    started = time.time()
    try:
        wanted = {module for message in messages for module in MODULES_FOR.get(message, ())}
        wanted.add("reports")  # always: reports left by a cycle that died, or whose message was lost
        if "scheduler" in wanted:
            delay = _scheduler_wait(last_scheduler_run)
            if delay > 0:
                # too soon for a full round: fill the free resources now, ask for the round after the delay
                wanted.discard("scheduler")
                wanted.add("quick_scheduler")
                _ask_for_scheduling_in(client, delay)
        if _runner_wanted(wanted):
            wanted.add("runner")
        table = _module_functions()
        for module in ORDER:
            if module in wanted:
                if module == "scheduler":
                    client.set(LAST_SCHEDULER_RUN, repr(time.time()))
                ran[module] = _run_module(module, table[module])
    finally:
        pending = _end(client, token, started, ran)
    return list(ran), pending


def _ask_for_scheduling_in(client: redis.Redis, delay: float) -> None:
    """Send ``Scheduling`` once OAR's minimum time has passed (one delayed message at a time).

    Lost with a restart of the head, it is replaced by beat's next ``Scheduling`` tick.
    """
    if client.set(DELAYED, "1", nx=True, px=int(delay * 1000) + 50):
        send_head_task(client, "oar.almighty.notify", {"messages": ["Scheduling"]}, countdown=delay)


def _end(client: redis.Redis, token: str, started: float, ran: dict[str, float]) -> int:
    """Record the cycle, release the lock and count the pending messages, in one round trip.

    The record keeps the last cycles' times, for the metrics and the fault
    tests: ``modules`` lists the modules in the order they ran, ``took`` gives
    each one's seconds.
    """
    took = {module: round(seconds, 6) for module, seconds in ran.items()}
    entry = json.dumps({"start": started, "end": time.time(), "modules": list(ran), "took": took, "pid": os.getpid()})
    try:
        return int(client.eval(_END, 3, CYCLES, LOCK, PENDING, entry, CYCLES_KEPT - 1, token))
    except redis.RedisError as error:
        logger.warning("almighty: cycle end not recorded: %s", error)
        return 0


def _take_over(client: redis.Redis, token: str, ttl: int) -> bool:
    """Take the lock over from a holder on this host that died.

    The lock's TTL bounds a dead holder's hold, but a head worker killed in
    the middle of a cycle and restarted at once would otherwise wait out the
    whole TTL before scheduling anything again.
    """
    holder = client.get(LOCK)
    if holder is None or not holder_is_dead(holder.decode(errors="replace")):
        return False
    logger.warning("almighty: the cycle lock's holder %s is dead; taking the lock over", holder.decode())
    return bool(client.eval(_TAKE_OVER, 1, LOCK, holder, token, ttl))


def _run_module(name: str, function: Callable[[], object]) -> float:
    """Run one module, logging rather than raising its failure; the seconds it took."""
    started = time.perf_counter()
    try:
        function()
    except Exception:
        logger.exception("module %s failed; the next cycle will retry", name)
    took = time.perf_counter() - started
    logger.debug("module %s took %.3f s", name, took)
    return took


def _follow_up(client: redis.Redis) -> None:
    """Send one more cycle task if messages came after the last cycle looked."""
    if client.scard(PENDING) and client.set(QUEUED, "1", nx=True, ex=QUEUED_TTL):
        send_head_task(client, "oar.almighty.cycle")


def run_cycles(client: redis.Redis, *, seconds: float = CYCLE_TASK_SECONDS) -> int:
    """Run cycles while messages keep coming, for up to ``seconds``; how many ran.

    ``QUEUED`` stays set meanwhile, so a message only joins the pending set.
    A cycle that finds the lock taken stops there: the holder owns ``QUEUED``
    and looks for messages again when its own cycle ends. Otherwise, once
    done, a message that came after the last look gets a cycle task of its own.
    """
    deadline = time.monotonic() + seconds
    count = 0
    while True:
        ran, pending = _cycle(client, renew_queued=True)
        if not ran:
            return count
        count += 1
        if time.monotonic() >= deadline or not pending:
            break
    client.delete(QUEUED)
    _follow_up(client)
    return count


@app.task(name="oar.almighty.cycle", ignore_result=True)
def cycle() -> None:
    """Almighty's task: coordinator cycles, as long as messages keep coming (:func:`run_cycles`)."""
    run_cycles(broker_redis())
