"""The head's Prometheus endpoint, scraped on a real cluster."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.faults.services import free_port

pytestmark = pytest.mark.cluster


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in the scrape:\n{text}"
    return float(match.group(1))


def test_head_exposes_jobs_resources_queues_and_cycles(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    cluster = cluster_factory(nodes=2, cores=2, OAR_METRICS_PORT=str(port))
    job_ids = [cluster.oarsub("-l", "/core=1", "true") for _ in range(3)]
    cluster.wait_for(job_ids)
    def terminated_shown() -> str | None:
        text = scrape(port)
        return text if 'oar_jobs{state="Terminated"} 3.0' in text else None

    text = cluster.wait_until(terminated_shown, 20, "three terminated jobs in the scrape")
    assert value(text, 'oar_resources{state="Alive"}') == 4
    assert value(text, 'oar_queue_length{queue="oar.head"}') >= 0
    assert 'oar_queue_length{queue="oar.node.node1"}' in text
    assert value(text, "oar_almighty_cycle_seconds_count") > 0
    assert 0 < value(text, "oar_almighty_last_cycle_seconds") < 60
