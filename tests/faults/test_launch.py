"""The same launch message delivered twice, and a job that outlives the broker's visibility timeout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from tests.faults.conftest import FAST
from tests.faults.counting import count, launch_command, launches_of

pytestmark = pytest.mark.cluster


def node_app(cluster: LocalCluster):  # type: ignore[no-untyped-def]
    """A Celery app on the cluster's broker, to send node tasks as the head does (signed: ``node_task``)."""
    from oar_celery.celery_app import create_app
    from oar_celery.config import load_settings

    return create_app(load_settings(cluster.env))


def spec_of(cluster: LocalCluster, job_id: int) -> tuple[str, dict]:
    """The launch spec a node recorded for ``job_id``, and that node."""
    for path in (cluster.state_dir / "nodes").glob(f"*/jobs/{job_id}/spec.json"):
        return path.parents[2].name, json.loads(path.read_text())
    raise AssertionError(f"no node recorded job {job_id}")


def test_same_launch_delivered_twice(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=2, **FAST)
    job_id = cluster.oarsub("-l", "/core=1", launch_command(launches, 3))
    cluster.wait_for(job_id, ["Running"], timeout=30)
    host, spec = spec_of(cluster, job_id)
    app = node_app(cluster)
    answers = [app.send_task("oar.node.launch", kwargs=cluster.node_task(host, "oar.node.launch", spec=spec),
                             queue=f"oar.node.{host}") for _ in range(2)]
    assert all("already launched" in a.get(timeout=20)["error"] for a in answers)
    # A launch the head never sent, delivered twice at once: the node's guard alone decides.
    stray = {**spec, "job_id": 990001}
    answers = [app.send_task("oar.node.launch", kwargs=cluster.node_task(host, "oar.node.launch", spec=stray),
                             queue=f"oar.node.{host}") for _ in range(2)]
    results = [a.get(timeout=20) for a in answers]
    assert sorted(bool(r.get("launched")) for r in results) == [False, True]
    counts = count("same launch delivered twice", cluster, [job_id], launches, timeout=30)
    cluster.wait_until(lambda: launches_of(launches)[990001] >= 1, 20, "the stray launch ran")
    counts.check()
    assert launches_of(launches)[990001] == 1


def test_job_longer_than_visibility_timeout(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=2, OAR_VISIBILITY_TIMEOUT="4", **FAST)
    job_ids = [cluster.oarsub("-l", "/core=1", launch_command(launches, 14)) for _ in range(2)]
    counts = count("job longer than the visibility timeout", cluster, job_ids, launches, timeout=60)
    counts.check()
    assert counts.launched == 2
    assert {cluster.state(job_id) for job_id in job_ids} == {"Terminated"}
