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
from collections.abc import Callable, Mapping

from oar_celery.head.lib.context import Context
from oar_celery.head.lib.holders import holder_is_dead, holder_token
from oar_celery.protocol import scripts
from oar_celery.protocol.bus import QUEUED_TTL, send_head_task
from oar_celery.protocol.names import Key, Message, Task, duration_bucket

logger = logging.getLogger(__name__)

CYCLES_KEPT = 500
#: Seconds one cycle task may go on running cycles while messages keep coming.
CYCLE_TASK_SECONDS = 1.0
#: Seconds between two Runner checks in cycles without a full round (this process's own clock).
RUNNER_EVERY = 1.0

#: A cycle's modules by name, each run with the process's context: the table Almighty is given.
Modules = Mapping[str, Callable[[Context], object]]

#: Which modules each message calls for.
MODULES_FOR: dict[str, tuple[str, ...]] = {
    Message.QSUB: ("scheduler",),
    Message.TERM: ("reports", "scheduler"),
    Message.REPORTS: ("reports",),
    Message.SCHEDULING: ("scheduler",),
    Message.QRESUME: ("scheduler",),
    Message.QHOLD: ("scheduler",),
    Message.QDEL: ("leon", "scheduler"),
    Message.CHSTATE: ("node_change_state", "scheduler"),
    Message.VILLAINS: ("sarko",),
    Message.FINAUD: ("finaud",),
}
#: Messages after which a job may start at once: new jobs, freed or returned resources, a job resumed.
START_NOW = frozenset({Message.QSUB, Message.TERM, Message.QRESUME, Message.CHSTATE})
#: The order in which a cycle runs modules; node reports open every cycle, the Runner closes those it runs in.
ORDER = ("reports", "node_change_state", "finaud", "sarko", "leon", "quick_scheduler", "scheduler", "runner")


class Almighty:
    """The coordinator of one head process: its context, its module table and when the Runner is due."""

    def __init__(self, context: Context, modules: Modules) -> None:
        self.context = context
        self.modules = modules
        self.redis = context.redis
        #: When a cycle without a full round runs the Runner again (``context.monotonic()``).
        self.next_runner_check = 0.0
        #: What the modules of the last :meth:`cycles` returned, in the order they ran (None left out).
        self.results: list[tuple[str, object]] = []

    def cycles(self, *, seconds: float = CYCLE_TASK_SECONDS) -> int:
        """Run cycles while messages keep coming, for up to ``seconds``; how many ran.

        ``QUEUED`` stays set meanwhile, so a message only joins the pending set.
        A cycle that finds the lock taken stops there: the holder owns ``QUEUED``
        and looks for messages again when its own cycle ends. Otherwise, once
        done, a message that came after the last look gets a cycle task of its own.
        """
        deadline = self.context.monotonic() + seconds
        count = 0
        self.results = []
        while True:
            ran, pending = self._cycle(renew_queued=True)
            if not ran:
                return count
            count += 1
            if self.context.monotonic() >= deadline or not pending:
                break
        self.redis.delete(Key.QUEUED)
        self._follow_up()
        return count

    def cycle(self) -> list[str]:
        """One coordinator cycle under the lock; the modules it ran (none if another cycle holds the lock)."""
        self.results = []
        return self._cycle()[0]

    def _cycle(self, *, renew_queued: bool = False) -> tuple[list[str], int]:
        """:meth:`cycle`, and how many messages are pending once it has ended.

        ``renew_queued``: also keep ``QUEUED`` set for another ``QUEUED_TTL`` seconds.
        """
        token = holder_token()
        begun = self._begin(token, renew_queued=renew_queued)
        if begun is None:
            return [], 0
        messages, last_scheduler_run = begun
        ran: dict[str, float] = {}
        started = self.context.now()
        try:
            wanted = self._wanted(messages, last_scheduler_run)
            for module in ORDER:
                if module in wanted:
                    if module == "scheduler":
                        self.redis.set(Key.LAST_SCHEDULER_RUN, repr(self.context.now()))
                    ran[module] = self._run_module(module)
        finally:
            pending = self._end(token, started, ran)
        return list(ran), pending

    def _wanted(self, messages: set[str], last_scheduler_run: float) -> set[str]:
        """The modules the messages call for; the quick round instead of a full one too soon, or before it."""
        wanted = {module for message in messages for module in MODULES_FOR.get(message, ())}
        wanted.add("reports")  # always: reports left by a cycle that died, or whose message was lost
        if "scheduler" in wanted:
            delay = self._scheduler_wait(last_scheduler_run)
            if delay > 0:
                # too soon for a full round: fill the free resources now, ask for the round after the delay
                wanted.discard("scheduler")
                wanted.add("quick_scheduler")
                self._ask_for_scheduling_in(delay)
            elif messages & START_NOW:
                # the quick round starts what fits now before the full round re-plans the whole queue:
                # on an idle cluster a new job is sent to its node without waiting for every prediction
                wanted.add("quick_scheduler")
        if self._runner_wanted(wanted):
            wanted.add("runner")
        return wanted

    def _begin(self, token: str, *, renew_queued: bool) -> tuple[set[str], float] | None:
        """Take the lock and every pending message in one round trip: the messages and the last full round.

        None if another cycle holds the lock (or its holder died: then the lock is taken over first).
        """
        ttl = int(self.context.settings.almighty_lock_ttl * 1000)
        keys = (Key.LOCK, Key.PENDING, Key.LAST_SCHEDULER_RUN, Key.QUEUED)
        renew = QUEUED_TTL if renew_queued else 0
        begun = self.redis.eval(scripts.BEGIN_CYCLE, 4, *keys, token, ttl, renew)
        if not begun and self._take_over(token, ttl):
            begun = self.redis.eval(scripts.BEGIN_CYCLE, 4, *keys, token, ttl, renew)
        if not begun:
            return None
        members, last = begun
        return {m.decode() for m in members}, float(last) if last else 0.0

    def _scheduler_wait(self, last_run: float) -> float:
        """Seconds before the scheduler may run again (OAR's minimum time between two calls)."""
        if not last_run:
            return 0.0
        return max(0.0, last_run + self.context.settings.scheduler_min_time - self.context.now())

    def _runner_wanted(self, modules: set[str]) -> bool:
        """The Runner after every full round, else once a second at most.

        Only a full round leaves jobs ``toLaunch``, ``toError`` or
        ``toAckReservation`` (a quick round launches its own jobs); the periodic
        check finds what a cycle killed before its Runner left, and the launches
        to send again.
        """
        at = self.context.monotonic()
        if "scheduler" not in modules and at < self.next_runner_check:
            return False
        self.next_runner_check = at + RUNNER_EVERY
        return True

    def _ask_for_scheduling_in(self, delay: float) -> None:
        """Send ``Scheduling`` once OAR's minimum time has passed (one delayed message at a time).

        Lost with a restart of the head, it is replaced by beat's next ``Scheduling`` tick.
        """
        if self.redis.set(Key.DELAYED, "1", nx=True, px=int(delay * 1000) + 50):
            send_head_task(self.redis, Task.NOTIFY, {"messages": [Message.SCHEDULING]}, countdown=delay)

    def _end(self, token: str, started: float, ran: dict[str, float]) -> int:
        """Record the cycle, release the lock and count the pending messages, in one round trip.

        The record keeps the last cycles' times, for the metrics and the fault
        tests: ``modules`` lists the modules in the order they ran, ``took`` gives
        each one's seconds.
        """
        took = {module: round(seconds, 6) for module, seconds in ran.items()}
        ended = self.context.now()
        entry = json.dumps({"start": started, "end": ended, "modules": list(ran), "took": took,
                            "pid": os.getpid()})
        keys = (Key.CYCLES, Key.LOCK, Key.PENDING, Key.DURATIONS)
        observed = [("cycle", max(0.0, ended - started)), *((f"module:{name}", s) for name, s in took.items())]
        counts = [part for name, seconds in observed for part in (name, duration_bucket(seconds), repr(seconds))]
        try:
            return int(self.redis.eval(scripts.END_CYCLE, 4, *keys, entry, CYCLES_KEPT - 1, token, *counts))
        except Exception as error:  # noqa: BLE001 - a broker hiccup: the lock expires by itself
            logger.warning("almighty: cycle end not recorded: %s", error)
            return 0

    def _take_over(self, token: str, ttl: int) -> bool:
        """Take the lock over from a holder on this host that died.

        The lock's TTL bounds a dead holder's hold, but a head worker killed in
        the middle of a cycle and restarted at once would otherwise wait out the
        whole TTL before scheduling anything again.
        """
        holder = self.redis.get(Key.LOCK)
        if holder is None or not holder_is_dead(holder.decode(errors="replace")):
            return False
        logger.warning("almighty: the cycle lock's holder %s is dead; taking the lock over", holder.decode())
        return bool(self.redis.eval(scripts.TAKE_OVER, 1, Key.LOCK, holder, token, ttl))

    def _run_module(self, name: str) -> float:
        """Run one module, logging rather than raising its failure; the seconds it took."""
        started = time.perf_counter()
        try:
            result = self.modules[name](self.context)
            if result is not None:
                self.results.append((name, result))
        except Exception:
            logger.exception("module %s failed; the next cycle will retry", name)
        took = time.perf_counter() - started
        logger.debug("module %s took %.3f s", name, took)
        return took

    def _follow_up(self) -> None:
        """Send one more cycle task if messages came after the last cycle looked."""
        if self.redis.scard(Key.PENDING) and self.redis.set(Key.QUEUED, "1", nx=True, ex=QUEUED_TTL):
            send_head_task(self.redis, Task.CYCLE)
