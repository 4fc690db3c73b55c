"""The head's counters on a Prometheus endpoint: jobs and resources by state, cycle times, queue lengths.

Nothing is counted in the worker's memory: the head worker is a prefork pool
whose children would each hold their own counters. Every scrape reads the
truth instead (the database for states, Redis for queue lengths and the
cycle times Almighty records under its lock), so a restarted head shows the
same numbers and the endpoint costs nothing between scrapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from oar_celery.config import Settings

logger = logging.getLogger(__name__)


def _states(table: str) -> dict[str, int]:
    from sqlalchemy import text

    from oar_celery.db.session import session_scope

    statement = text(f"SELECT state, count(*) FROM {table} GROUP BY state")  # table: ours, never user text
    with session_scope() as session:
        return {state: int(n) for state, n in session.execute(statement)}


def _hosts() -> list[str]:
    from sqlalchemy import text

    from oar_celery.db.session import session_scope

    with session_scope() as session:
        return [host for (host,) in session.execute(text("SELECT DISTINCT network_address FROM resources"))]


def _queues(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The head's queue and every known node's (an empty queue does not exist in Redis: 0)."""
    from oar_celery.celery_app import HEAD_QUEUE, node_queue

    names = {HEAD_QUEUE, *(key.decode() for key in client.scan_iter(match="oar.node.*", count=500))}
    try:
        names.update(node_queue(host) for host in _hosts())
    except Exception as error:  # noqa: BLE001 - the queues Redis knows are still worth showing
        logger.warning("metrics: cannot read the hosts: %s", type(error).__name__)
    return {name: int(client.llen(name)) for name in sorted(names) if client.type(name) in (b"list", b"none")}


def _cycles(client) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    from oar_celery.protocol.names import Key

    return [json.loads(raw) for raw in client.lrange(Key.CYCLES, 0, -1)]


class OarCollector(Collector):
    """Reads the cluster's state at each scrape."""

    def collect(self) -> Iterator[Metric]:
        from oar_celery.protocol.bus import broker_redis

        jobs = GaugeMetricFamily("oar_jobs", "Jobs by state", labels=["state"])
        resources = GaugeMetricFamily("oar_resources", "Resources by state", labels=["state"])
        for family, table in ((jobs, "jobs"), (resources, "resources")):
            try:
                for state, count in _states(table).items():
                    family.add_metric([state], count)
            except Exception as error:  # noqa: BLE001 - a scrape must answer even with the database down
                logger.warning("metrics: cannot read %s: %s", table, type(error).__name__)
            yield family
        client = broker_redis()
        queues = GaugeMetricFamily("oar_queue_length", "Messages waiting in each queue", labels=["queue"])
        for name, length in _queues(client).items():
            queues.add_metric([name], length)
        yield queues
        cycles = _cycles(client)
        durations = [entry["end"] - entry["start"] for entry in cycles]
        summary = SummaryMetricFamily("oar_almighty_cycle_seconds", "Duration of the recent Almighty cycles")
        summary.add_metric([], count_value=len(durations), sum_value=sum(durations))
        yield summary
        last = GaugeMetricFamily("oar_almighty_last_cycle_seconds", "Duration of the last Almighty cycle")
        last.add_metric([], durations[0] if durations else 0.0)
        yield last
        ended = GaugeMetricFamily("oar_almighty_last_cycle_end", "Unix time the last Almighty cycle ended")
        ended.add_metric([], cycles[0]["end"] if cycles else 0.0)
        yield ended


def registry() -> CollectorRegistry:
    result = CollectorRegistry(auto_describe=False)
    result.register(OarCollector())
    return result


def serve(config: Settings) -> None:
    """Start the endpoint in a thread of the head worker's main process."""
    from prometheus_client import start_http_server

    start_http_server(config.metrics_port, addr=config.metrics_address, registry=registry())
    logger.info("metrics on http://%s:%s/metrics", config.metrics_address, config.metrics_port)
