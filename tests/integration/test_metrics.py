"""The head's Prometheus endpoint, scraped on a real cluster and read with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.services import free_port

pytestmark = pytest.mark.cluster

CURRENT = ("Waiting", "Hold", "toLaunch", "toError", "toAckReservation", "Launching", "Running", "Suspended",
           "Resuming", "Finishing")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{key} not in the scrape: {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_show_every_state_and_count_jobs_and_cycles_as_counters(cluster_factory: Any) -> None:
    port = free_port()
    cluster = cluster_factory(nodes=2, cores=2, OAR_METRICS_PORT=str(port))
    before = cluster.wait_until(lambda: _scrape_or_none(port), 30, "the metrics endpoint")
    for queue in ("default", "admin", "besteffort"):  # every current state of every queue, zeros included
        for state in CURRENT:
            assert value(before, "oar_jobs", state=state, queue=queue) == 0
        assert value(before, "oar_jobs_finished_total", queue=queue, state="Error") == 0
    for host in ("node1", "node2"):
        assert value(before, "oar_resources", state="Alive", host=host) == 2
        for state in ("Absent", "Suspected", "Dead"):
            assert value(before, "oar_resources", state=state, host=host) == 0
        assert value(before, "oar_broker_queue_messages", queue=f"oar.node.{host}") >= 0
    assert value(before, "oar_broker_queue_messages", queue="oar.head") >= 0
    held = cluster.oarsub("--hold", "-l", "/core=1", "true")
    job_ids = [cluster.oarsub("-l", "/core=1", "sleep 1") for _ in range(3)]
    cluster.wait_for(job_ids)

    def counted() -> dict[Any, float] | None:
        samples = scrape(port)
        return samples if value(samples, "oar_jobs_finished_total", queue="default", state="Terminated") >= 3 \
            else None

    after = cluster.wait_until(counted, 30, "three finished jobs counted")
    assert value(after, "oar_jobs", state="Hold", queue="default") == 1 and cluster.state(held) == "Hold"
    assert value(after, "oar_jobs_submitted_total", queue="default") == 4
    assert value(after, "oar_jobs_started_total", queue="default") == 3
    assert value(after, "oar_job_wait_seconds_count", queue="default") == 3
    assert value(after, "oar_job_wait_seconds_bucket", queue="default", le="+Inf") == 3
    assert value(after, "oar_almighty_cycle_duration_seconds_count") > value(
        before, "oar_almighty_cycle_duration_seconds_count") > 0
    assert value(after, "oar_almighty_module_duration_seconds_count", module="scheduler") > 0
    assert after[("oar_almighty_last_cycle_end_timestamp_seconds", ())] > 0
    for key, number in before.items():  # counters and histogram counts never go down
        if key[0].endswith(("_total", "_count", "_bucket", "_sum")) and key in after:
            assert after[key] >= number, key
    again = scrape(port)
    for key, number in after.items():
        if key[0].endswith(("_total", "_count", "_bucket")):
            assert again.get(key, 0) >= number, key


def _scrape_or_none(port: int) -> dict[Any, float] | None:
    try:
        samples = scrape(port)
    except OSError:
        return None
    return samples if any(name == "oar_jobs" for name, _ in samples) else None
