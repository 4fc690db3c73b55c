"""The head's Prometheus endpoint (on by default): jobs, resources, the broker's queues, Almighty's cycles.

Names follow Prometheus's conventions, and every label value a dashboard
expects is present, zeros included:

- ``oar_jobs{state,queue}``: the jobs in the system now (every current state x every queue);
- ``oar_jobs_submitted_total{queue}``, ``oar_jobs_started_total{queue}`` (launched; a job is launched
  once), ``oar_jobs_finished_total{queue,state}`` (``Terminated``/``Error``), and the histogram
  ``oar_job_wait_seconds{queue}`` (submission to launch): counters of what happened since this
  process started, so ``rate()`` is right (a restart resets them, as any Prometheus counter);
- ``oar_resources{state,host}``: resources by state on each host (every state on every host);
- ``oar_broker_queue_messages{queue}``: messages waiting in the broker's lists (head and each node);
- ``oar_almighty_cycle_duration_seconds`` and ``oar_almighty_module_duration_seconds{module}``: histograms
  that Almighty counts in Redis at the end of each cycle (one Lua script with the cycle's end), so
  no cycle is missed between two scrapes and a restarted head keeps them;
- ``oar_almighty_last_cycle_end_timestamp_seconds``;
- ``oar_refused_messages_total{kind,origin}``: messages refused for their signature, freshness or
  identity (a forged node task, a fake or replayed report), by what they were and whom they claimed
  to come from, counted in Redis (``oar:refused``) by whichever process refused them.

A scrape costs the same with a million finished jobs as with none: current
jobs are counted through the state index, and the counters fold in only the
job and state-log rows added since the last scrape (key ranges). A row stays
"recent" for :data:`SETTLE` seconds, long enough for any transaction that
took a lower id to commit, and is counted once when first seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import Job, JobStateLog, Queue, Resource
from oar_celery.protocol.names import DURATION_BUCKETS, Key
from oar_celery.protocol.states import CURRENT_STATES, FINAL_STATES, JobState, ResourceState

logger = logging.getLogger(__name__)

#: Seconds after which no transaction can still commit a row with a lower id than one already seen.
SETTLE = 30.0
#: The state-log entries the counters count: a launch, an end.
COUNTED_STATES = (JobState.LAUNCHING, *FINAL_STATES)
#: Upper bounds (seconds) of the wait-time histogram: from a second to a week.
WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 7 * 86400.0)


class Tail:
    """Rows of a table read by increasing key, each counted once, the key range behind them forgotten.

    ``seen`` holds the keys above ``settled`` already counted; a key leaves it
    once every row up to it is older than :data:`SETTLE` seconds.
    """

    def __init__(self, start: int) -> None:
        self.settled = start
        self.seen: set[int] = set()

    def fresh(self, rows: Iterable[tuple[int, float, Any]], now: float) -> list[Any]:
        """The rows not counted yet (``(key, time, row)``, by increasing key); moves ``settled`` on."""
        new = []
        advancing = True
        for key, at, row in rows:
            if key not in self.seen:
                self.seen.add(key)
                new.append(row)
            if advancing and at < now - SETTLE:
                self.settled = key
                self.seen.discard(key)
            else:
                advancing = False
        self.seen = {key for key in self.seen if key > self.settled}
        return new


class JobCounters:
    """Submitted, started and finished jobs and their waits, since this process started."""

    def __init__(self, session: Session) -> None:
        self.jobs = Tail(int(session.scalar(select(func.max(Job.job_id))) or 0))
        self.logs = Tail(int(session.scalar(select(func.max(JobStateLog.job_state_log_id))) or 0))
        self.submitted: dict[str, int] = defaultdict(int)
        self.started: dict[str, int] = defaultdict(int)
        self.finished: dict[tuple[str, str], int] = defaultdict(int)
        self.waits: dict[str, list[float]] = defaultdict(lambda: [0.0] * (len(WAIT_BUCKETS) + 1))
        self.wait_sums: dict[str, float] = defaultdict(float)
        self.created = time.time()

    def fold(self, session: Session, now: float) -> None:
        jobs = session.execute(
            select(Job.job_id, Job.submission_time, Job.queue_name)
            .where(Job.job_id > self.jobs.settled).order_by(Job.job_id)
        )
        for queue in self.jobs.fresh(((i, at, queue) for i, at, queue in jobs), now):
            self.submitted[queue] += 1
        logs = session.execute(
            select(JobStateLog.job_state_log_id, JobStateLog.date_start, JobStateLog.job_state, Job.queue_name,
                   Job.submission_time)
            .join(Job, Job.job_id == JobStateLog.job_id)
            .where(JobStateLog.job_state_log_id > self.logs.settled,
                   JobStateLog.job_state.in_(COUNTED_STATES))  # 2 of a job's 6 or so entries: a third of the join
            .order_by(JobStateLog.job_state_log_id)
        )
        rows = ((i, at, (at, state, queue, submitted)) for i, at, state, queue, submitted in logs)
        for at, state, queue, submitted in self.logs.fresh(rows, now):
            if state == JobState.LAUNCHING:
                self.started[queue] += 1
                self._wait(queue, max(0.0, at - submitted))
            elif state in FINAL_STATES:
                self.finished[(queue, state)] += 1

    def _wait(self, queue: str, seconds: float) -> None:
        index = next((i for i, bound in enumerate(WAIT_BUCKETS) if seconds <= bound), len(WAIT_BUCKETS))
        self.waits[queue][index] += 1
        self.wait_sums[queue] += seconds

    def families(self, queues: list[str]) -> Iterator[Metric]:
        submitted = CounterMetricFamily("oar_jobs_submitted", "Jobs submitted, by queue", labels=["queue"],
                                        created=self.created)
        started = CounterMetricFamily("oar_jobs_started", "Jobs launched on their nodes, by queue",
                                      labels=["queue"], created=self.created)
        finished = CounterMetricFamily("oar_jobs_finished", "Jobs ended, by queue and end state",
                                       labels=["queue", "state"], created=self.created)
        wait = HistogramMetricFamily("oar_job_wait_seconds", "Time from submission to launch, by queue",
                                     labels=["queue"])
        for queue in sorted({*queues, *self.submitted, *self.started, *(q for q, _ in self.finished)}):
            submitted.add_metric([queue], self.submitted.get(queue, 0), created=self.created)
            started.add_metric([queue], self.started.get(queue, 0), created=self.created)
            for state in FINAL_STATES:
                finished.add_metric([queue, state], self.finished.get((queue, state), 0), created=self.created)
            wait.add_metric([queue], cumulative(WAIT_BUCKETS, self.waits[queue]), self.wait_sums[queue])
        yield from (submitted, started, finished, wait)


def cumulative(bounds: Iterable[float], counts: list[float]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative ``le`` buckets, ``+Inf`` last."""
    labels = [*(repr(float(b)) for b in bounds), "+Inf"]
    total = 0.0
    buckets = []
    for label, count in zip(labels, counts, strict=True):
        total += count
        buckets.append((label, total))
    return buckets


def current_jobs(session: Session) -> dict[tuple[str, str], int]:
    query = (select(Job.state, Job.queue_name, func.count()).where(Job.state.in_(CURRENT_STATES))
             .group_by(Job.state, Job.queue_name))
    return {(state, queue): int(n) for state, queue, n in session.execute(query)}


def resources_by_host(session: Session) -> dict[tuple[str, str], int]:
    query = select(Resource.network_address, Resource.state, func.count()).group_by(
        Resource.network_address, Resource.state)
    return {(host, state): int(n) for host, state, n in session.execute(query)}


def broker_queues(client: Any, hosts: Iterable[str]) -> dict[str, int]:
    """The head's queue and every node's (an empty queue does not exist in Redis: 0)."""
    from oar_celery.celery_app import HEAD_QUEUE, node_queue

    names = sorted({HEAD_QUEUE, *(node_queue(host) for host in hosts)})
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return {name: int(length) for name, length in zip(names, pipe.execute(), strict=True)}


def durations(client: Any) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Almighty's histograms from Redis: per name the count of each bucket (``+Inf`` last), and the sums."""
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * (len(DURATION_BUCKETS) + 1))
    sums: dict[str, float] = defaultdict(float)
    labels = [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]
    for raw_field, raw_value in client.hgetall(Key.DURATIONS).items():
        name, _, bucket = raw_field.decode().rpartition("|")
        if bucket == "sum":
            sums[name] = float(raw_value)
        elif bucket in labels:
            counts[name][labels.index(bucket)] = float(raw_value)
    return counts, sums


class OarCollector(Collector):
    """Reads the cluster's state at each scrape, and folds in what happened since the last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: JobCounters | None = None
        self.hosts: list[str] = []

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._database()
            yield from self._broker()

    def warm(self) -> None:
        """One collection before the endpoint opens: the counters start with the process, not at the
        first scrape, and the connections, the imports and the highest ids are ready (the first scrape
        with a million finished jobs took 0.37–0.45 s, the next ones 25–35 ms)."""
        for _ in self.collect():
            pass

    def _database(self) -> Iterator[Metric]:
        from oar_celery.db.session import session_scope

        try:
            with session_scope() as session:
                if self.counters is None:
                    self.counters = JobCounters(session)
                self.counters.fold(session, time.time())
                queues = sorted(session.scalars(select(Queue.queue_name)))
                jobs, resources = current_jobs(session), resources_by_host(session)
        except Exception as error:  # noqa: BLE001 - a scrape must answer even with the database down
            logger.warning("metrics: cannot read the database: %s", type(error).__name__)
            return
        current = GaugeMetricFamily("oar_jobs", "Jobs in the system now, by state and queue",
                                    labels=["state", "queue"])
        for state in CURRENT_STATES:
            for queue in sorted({*queues, *(q for _, q in jobs)}):
                current.add_metric([state, queue], jobs.get((state, queue), 0))
        yield current
        yield from self.counters.families(queues)
        by_host = GaugeMetricFamily("oar_resources", "Resources by state, on each host", labels=["state", "host"])
        for host in sorted({host for host, _ in resources}):
            for state in (*ResourceState, *sorted({s for _, s in resources} - set(ResourceState))):
                by_host.add_metric([state, host], resources.get((host, state), 0))
        yield by_host
        self.hosts = sorted({host for host, _ in resources})

    def _broker(self) -> Iterator[Metric]:
        from oar_celery.protocol.bus import broker_redis

        try:
            client = broker_redis()
            queues = broker_queues(client, self.hosts)
            counts, sums = durations(client)
            last = client.lindex(Key.CYCLES, 0)
            refused = refusals(client)
        except Exception as error:  # noqa: BLE001 - the database's metrics are still worth showing
            logger.warning("metrics: cannot read the broker: %s", type(error).__name__)
            return
        depth = GaugeMetricFamily("oar_broker_queue_messages", "Messages waiting in the broker's queues",
                                  labels=["queue"])
        for name, length in queues.items():
            depth.add_metric([name], length)
        yield depth
        cycle = HistogramMetricFamily("oar_almighty_cycle_duration_seconds", "Duration of Almighty's cycles")
        cycle.add_metric([], cumulative(DURATION_BUCKETS, counts["cycle"]), sums["cycle"])
        yield cycle
        modules = HistogramMetricFamily("oar_almighty_module_duration_seconds",
                                        "Duration of each module's runs in Almighty's cycles", labels=["module"])
        for name in sorted(n for n in counts if n.startswith("module:")):
            modules.add_metric([name.removeprefix("module:")], cumulative(DURATION_BUCKETS, counts[name]), sums[name])
        yield modules
        ended = GaugeMetricFamily("oar_almighty_last_cycle_end_timestamp_seconds",
                                  "When the last Almighty cycle ended (Unix time)")
        ended.add_metric([], _end_of(last))
        yield ended
        counted = CounterMetricFamily("oar_refused_messages", "Messages refused for their signature, freshness or "
                                      "identity, by kind and claimed origin", labels=["kind", "origin"])
        for (kind, origin), count in sorted(refused.items()):
            counted.add_metric([kind, origin], count)
        yield counted


def refusals(client: Any) -> dict[tuple[str, str], float]:
    """The refusal counters of ``oar:refused`` (``<kind>:<origin>`` → count), by (kind, origin)."""
    counts: dict[tuple[str, str], float] = {}
    for raw_field, raw_value in client.hgetall(Key.REFUSED).items():
        kind, _, origin = raw_field.decode(errors="replace").partition(":")
        try:
            counts[(kind, origin or "unknown")] = float(raw_value)
        except ValueError:
            continue
    return counts


def _end_of(record: bytes | None) -> float:
    import json

    try:
        return float(json.loads(record)["end"]) if record else 0.0
    except (ValueError, KeyError, TypeError):
        return 0.0


def registry_of(collector: OarCollector) -> CollectorRegistry:
    result = CollectorRegistry(auto_describe=False)
    result.register(collector)
    return result


def serve(config: Settings) -> None:
    """Open the endpoint from a thread of the head worker's main process, once its collector is warm."""
    threading.Thread(target=_warm_then_listen, args=(config,), name="oar-metrics", daemon=True).start()


def _warm_then_listen(config: Settings) -> None:
    """A taken port is a warning, not a crash."""
    from prometheus_client import start_http_server

    collector = OarCollector()
    collector.warm()
    try:
        start_http_server(config.metrics_port, addr=config.metrics_address, registry=registry_of(collector))
    except OSError as error:
        logger.warning("metrics: cannot listen on %s:%s (%s)", config.metrics_address, config.metrics_port,
                       error.strerror or error)
        return
    logger.info("metrics on http://%s:%s/metrics", config.metrics_address, config.metrics_port)
