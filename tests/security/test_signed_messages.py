"""An ordinary user who knows the broker's URL forges node tasks and reports: each is refused, nothing changes.

The cluster signs its node messages (``up`` makes its keys). Its broker is
open, with no ACL roles (``test_broker_roles.py`` tries those): the
signatures alone must hold. The attacker is
a second unix account running ``forge.py``: it pushes what the head or a node
would push, and the test checks, from the outside, that the victim's job
still runs, the database is as it was, and the refusal was logged with its
origin and counted in ``oar_refused_messages_total``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import LocalCluster
from tests.faults.services import free_port

pytestmark = pytest.mark.cluster

FORGE = Path(__file__).with_name("forge.py")
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def signed_cluster(cluster_factory, accounts):  # type: ignore[no-untyped-def]
    """Two nodes on an open broker, its metrics on a port of its own."""
    port = free_port()
    cluster = cluster_factory(nodes=2, cores=2, OAR_METRICS_PORT=str(port))
    cluster.metrics_port = port  # type: ignore[attr-defined]
    return cluster


@pytest.fixture(scope="module")
def victim(signed_cluster: LocalCluster) -> dict[str, Any]:
    """A running job of someone else's: its id, its node, the other node."""
    job_id = signed_cluster.oarsub("-l", "/nodes=1/core=1", "sleep 600")
    signed_cluster.wait_for(job_id, ["Running"], timeout=60)
    host = signed_cluster.scalar(
        "SELECT r.network_address FROM assigned_resources a JOIN resources r USING (resource_id) "
        "JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id WHERE j.job_id = :id", id=job_id)
    other = "node2" if host == "node1" else "node1"
    return {"job_id": job_id, "host": host, "other": other}


def forge(cluster: LocalCluster, user: str, **action: Any) -> None:
    """Run one forgery as ``user``, with nothing but the broker's URL."""
    action["broker"] = cluster.env["OAR_BROKER_URL"]
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(FORGE), user, json.dumps(action)], env=env, cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "sent" in done.stdout, done.stderr


def refused(cluster: LocalCluster, kind: str, origin: str) -> int:
    value = redis.Redis.from_url(cluster.env["OAR_BROKER_URL"]).hget("oar:refused", f"{kind}:{origin}")
    return int(value or 0)


def wait_refused(cluster: LocalCluster, kind: str, origin: str, before: int) -> None:
    cluster.wait_until(lambda: refused(cluster, kind, origin) > before, 30, f"a refused {kind} from {origin}")


def snapshot(cluster: LocalCluster) -> list[Any]:
    """What a forgery must not change: every job's state and resources, the state logs, the events."""
    return [
        cluster.query("SELECT job_id, state, assigned_moldable_job, exit_code FROM jobs ORDER BY job_id"),
        cluster.query("SELECT count(*) FROM job_state_logs"),
        cluster.query("SELECT count(*) FROM assigned_resources"),
        cluster.query("SELECT count(*) FROM event_logs WHERE job_id <> 0"),
    ]


def still_running(cluster: LocalCluster, victim: dict[str, Any]) -> None:
    """The victim's job is still ``Running`` in the database, and on its node nothing recorded its end."""
    assert cluster.state(victim["job_id"]) == "Running"
    job_dir = cluster.state_dir / "nodes" / victim["host"] / "jobs" / str(victim["job_id"])
    assert job_dir.is_dir() and not (job_dir / "status.json").exists()


def log_of(cluster: LocalCluster, name: str) -> str:
    return (cluster.state_dir / "log" / f"oar-{name}.log").read_text(errors="replace")


def spec(victim: dict[str, Any], job_id: int, user: str, command: str, directory: Path) -> dict[str, Any]:
    host = victim["host"]
    return {"job_id": job_id, "user": user, "command": command, "directory": str(directory), "name": "x",
            "walltime": 60, "hosts": [host], "resources": [1], "nodefile": f"{host}\n", "stdout": "/dev/null",
            "stderr": "/dev/null", "env": {}, "array_id": job_id, "array_index": 1, "checkpoint": 0,
            "checkpoint_signal": 12, "project": "default", "types": [], "kill_grace": 1}


def ended(job_id: int, host: str) -> dict[str, Any]:
    return {"kind": "ended", "job_id": job_id, "host": host, "exit_code": 0, "reason": "exited", "message": ""}


@pytest.mark.parametrize("run_as", ["root", "alice"])
def test_a_launch_forged_by_a_user_runs_nothing(signed_cluster, victim, accounts, shared_dir, run_as) -> None:  # type: ignore[no-untyped-def]
    """Unsigned as root; as another user with a signature under a key of the forger's making."""
    user = "root" if run_as == "root" else accounts["alice"]
    origin = "unsigned" if run_as == "root" else "head"
    job_id = 990001 if run_as == "root" else 990002
    proof = shared_dir / f"pwned-{run_as}"
    before, state = refused(signed_cluster, "launch", origin), snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="task", task="oar.node.launch", host=victim["host"],
          kwargs={"spec": spec(victim, job_id, user, f"touch {proof}", shared_dir)}, fake_key=run_as != "root")
    wait_refused(signed_cluster, "launch", origin, before)
    assert not proof.exists()
    assert not (signed_cluster.state_dir / "nodes" / victim["host"] / "jobs" / str(job_id)).exists()
    assert snapshot(signed_cluster) == state
    why = "unsigned" if run_as == "root" else "bad signature"
    node_log = log_of(signed_cluster, f"node-{victim['host']}")
    assert f"refused launch from {origin} on {victim['host']}: {why}" in node_log


def test_a_forged_kill_leaves_the_job_running(signed_cluster, victim, accounts) -> None:  # type: ignore[no-untyped-def]
    before, state = refused(signed_cluster, "kill", "unsigned"), snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="task", task="oar.node.kill", host=victim["host"],
          kwargs={"job_id": victim["job_id"], "grace": 0})
    wait_refused(signed_cluster, "kill", "unsigned", before)
    still_running(signed_cluster, victim)
    assert snapshot(signed_cluster) == state
    assert f"refused kill from unsigned on {victim['host']}" in log_of(signed_cluster, f"node-{victim['host']}")


def test_a_fake_ended_report_changes_nothing(signed_cluster, victim, accounts) -> None:  # type: ignore[no-untyped-def]
    before, state = refused(signed_cluster, "ended", "unsigned"), snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="reports", reports=[ended(victim["job_id"], victim["host"])])
    wait_refused(signed_cluster, "ended", "unsigned", before)
    still_running(signed_cluster, victim)
    assert snapshot(signed_cluster) == state
    assert "refused ended from unsigned on head: unsigned" in log_of(signed_cluster, "head")


def test_a_forged_ping_answer_ends_no_job(signed_cluster, victim, accounts) -> None:  # type: ignore[no-untyped-def]
    """A node's answer to Finaud, in the victim node's name, saying the job ended."""
    status = {"exit_code": 0, "reason": "exited", "message": ""}
    before, state = refused(signed_cluster, "answer", "unsigned"), snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="task", task="oar.finaud.answer", host=victim["host"],
          queue="oar.head", kwargs={"host": victim["host"], "token": "forged", "jobs": {str(victim["job_id"]): status}})
    wait_refused(signed_cluster, "answer", "unsigned", before)
    still_running(signed_cluster, victim)
    assert snapshot(signed_cluster) == state
    assert "refused answer from unsigned on head: unsigned" in log_of(signed_cluster, "head")


def test_a_replayed_genuine_message_is_refused(signed_cluster, victim, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    """A message the head really signed, captured on the broker and pushed again by the user."""
    from oar_celery.config import load_settings
    from oar_celery.protocol.signing import Keyring, sign, task_subject
    from oar_celery.protocol.wire import task_message

    host, task = victim["host"], "oar.node.signal"
    keys = Keyring(load_settings(signed_cluster.env).keys, enabled=True)
    kwargs: dict[str, Any] = {"job_id": victim["job_id"], "signum": "CONT"}
    kwargs["oar_sig"] = sign(keys.node(host), "head", task_subject(task, host), kwargs)  # type: ignore[arg-type]
    captured = task_message(task, kwargs, f"oar.node.{host}", ignore_result=True)
    before = refused(signed_cluster, "signal", "head")
    redis.Redis.from_url(signed_cluster.env["OAR_BROKER_URL"]).lpush(f"oar.node.{host}", captured)
    copy = shared_dir / "captured.msg"
    copy.write_bytes(captured)
    copy.chmod(0o644)
    state = snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="raw", queue=f"oar.node.{host}", file=str(copy))
    wait_refused(signed_cluster, "signal", "head", before)
    assert refused(signed_cluster, "signal", "head") == before + 1  # the first delivery ran, the replay did not
    still_running(signed_cluster, victim)
    assert snapshot(signed_cluster) == state
    assert f"refused signal from head on {host}: replayed" in log_of(signed_cluster, f"node-{host}")


def test_a_node_cannot_report_on_another_nodes_job(signed_cluster, victim, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    """With the other node's key (that node compromised): about itself, or in the victim node's name."""
    from oar_celery.config import load_settings

    other = victim["other"]
    stolen = shared_dir / f"{other}.key"
    shutil.copy(load_settings(signed_cluster.env).keys / "nodes" / f"{other}.key", stolen)
    stolen.chmod(0o644)
    before, state = refused(signed_cluster, "ended", other), snapshot(signed_cluster)
    forge(signed_cluster, accounts["bob"], op="reports", key_file=str(stolen), signer=other,
          reports=[ended(victim["job_id"], other), ended(victim["job_id"], victim["host"])])
    signed_cluster.wait_until(lambda: refused(signed_cluster, "ended", other) >= before + 2, 30,
                              "both reports refused")
    still_running(signed_cluster, victim)
    assert snapshot(signed_cluster) == state
    head_log = log_of(signed_cluster, "head")
    assert f"refused ended from {other} on head: job {victim['job_id']} does not run on {other}" in head_log
    assert f"refused ended from {other} on head: signed by {other} about host '{victim['host']}'" in head_log


def test_the_refusals_are_in_the_metrics_and_the_job_still_ends_normally(signed_cluster, victim) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{signed_cluster.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    for kind, origin in (("launch", "unsigned"), ("kill", "unsigned"), ("ended", "unsigned")):
        key = ("oar_refused_messages_total", (("kind", kind), ("origin", origin)))
        assert samples.get(key, 0) >= 1, f"{key} not counted: {sorted(k for k in samples if 'refused' in k[0])}"
    counted = redis.Redis.from_url(signed_cluster.env["OAR_BROKER_URL"]).hgetall("oar:refused")
    forged = {"launch:unsigned", "launch:head", "kill:unsigned", "ended:unsigned", "answer:unsigned", "signal:head",
              f"ended:{victim['other']}"}
    assert {field.decode() for field in counted} == forged  # the cluster's own messages: none refused
    # The genuine messages still work: the head's kill is signed, the node's end report too.
    assert signed_cluster.run("oardel", str(victim["job_id"])).returncode == 0
    assert signed_cluster.wait_for(victim["job_id"], timeout=60)[victim["job_id"]] in ("Error", "Terminated")
