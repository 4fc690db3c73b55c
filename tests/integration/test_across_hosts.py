"""The head and two compute nodes as separate hosts, each in its own network namespace.

The test builds the network (``ip netns``, one veth pair from the head to each
node, private 10.213.x.y addresses), runs Redis and the head inside the head's
namespace, one node worker inside each node's, and talks to them only through
those links. A two-node job runs across the hosts; then one node's link is
cut and Finaud must see it ``Suspected``, then ``Alive`` once it is restored.
The database is SQLite on the shared disk: only the head writes it, and the
test reads it for its assertions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
CELERY = [sys.executable, "-m", "celery", "-A", "oar_celery.celery_app:app"]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def cannot_create_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip") or not shutil.which("redis-server"):
        return "needs the ip command and redis-server"
    probe = f"oarprobe{uuid.uuid4().hex[:6]}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


class Hosts:
    """Three namespaces: ``head`` linked to ``node1`` (10.213.1.0/24) and ``node2`` (10.213.2.0/24)."""

    def __init__(self, workdir: Path) -> None:
        tag = uuid.uuid4().hex[:5]
        self.ns = {name: f"oar{name}{tag}" for name in ("head", "node1", "node2")}
        self.links = {node: (f"oh{i}{tag}", f"on{i}{tag}") for i, node in enumerate(("node1", "node2"), 1)}
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i, (node, (head_end, node_end)) in enumerate(self.links.items(), 1):
            sh("ip", "link", "add", head_end, "netns", self.ns["head"], "type", "veth", "peer", "name", node_end,
               "netns", self.ns[node])
            sh("ip", "-n", self.ns["head"], "addr", "add", f"10.213.{i}.1/24", "dev", head_end)
            sh("ip", "-n", self.ns[node], "addr", "add", f"10.213.{i}.2/24", "dev", node_end)
            sh("ip", "-n", self.ns["head"], "link", "set", head_end, "up")
            sh("ip", "-n", self.ns[node], "link", "set", node_end, "up")

    def route_between_nodes(self) -> None:
        """The head forwards between its two links, so that node1 and node2 reach each other (oarsh)."""
        sh("ip", "netns", "exec", self.ns["head"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", self.ns["node1"], "route", "add", "10.213.2.0/24", "via", "10.213.1.1")
        sh("ip", "-n", self.ns["node2"], "route", "add", "10.213.1.0/24", "via", "10.213.2.1")

    def link(self, node: str, up: bool) -> None:
        sh("ip", "-n", self.ns[node], "link", "set", self.links[node][1], "up" if up else "down")

    def start(self, host: str, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.workdir / f"{name}.out", "ab") as out:
            self.processes.append(subprocess.Popen(
                ["ip", "netns", "exec", self.ns[host], *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))

    def destroy(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    reason = cannot_create_namespaces()
    if reason:
        pytest.skip(reason)
    made = Hosts(tmp_path)
    try:
        made.build()
        yield made
    finally:
        made.destroy()


def base_env(state: Path, broker: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(OAR_STATE_DIR=str(state), OAR_BROKER_URL=broker, OAR_CONFIG_FILE=str(state / "absent.conf"),
               OAR_DATABASE_URL=f"sqlite:///{state / 'oar.db'}", OAR_LOG_LEVEL="DEBUG", OAR_ALLOW_ROOT_JOBS="yes",
               OAR_SCHEDULER_MIN_TIME="0.1", OAR_ALMIGHTY_TICK="1", OAR_SARKO_PERIOD="1", OAR_FINAUD_PERIOD="1",
               OAR_FINAUD_TIMEOUT="2", OAR_NODE_CHANGE_STATE_PERIOD="1", OAR_SECURITY_TIME="0",
               PYTHONPATH=str(Path(__file__).parents[2]))
    return env


def start_cluster(hosts: Hosts, state: Path) -> dict[str, str]:
    from oar_celery.cluster import beat_argv, head_worker_argv
    from oar_celery.config import load_settings
    from oar_celery.node.worker import node_worker_argv, node_worker_env
    from oar_celery.protocol.tls import ensure_cluster_keys

    head_env = base_env(state, "redis://127.0.0.1:6379/0")
    ensure_cluster_keys(state / "keys", ["node1", "node2"])  # what 'oar-celery up' makes: the job-shell keys
    for argv in (["db", "init"], ["resources", "add", "--offline", "node[1-2]", "--cores", "2"]):
        subprocess.run([str(BIN / "oar-celery"), *argv], env=head_env, check=True, capture_output=True, timeout=60)
    hosts.start("head", "redis", ["redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                                  "--save", "", "--appendonly", "no"], head_env)
    time.sleep(0.5)
    config = load_settings(head_env)
    hosts.start("head", "head", head_worker_argv(config), {**head_env, "OAR_PROCESS_KIND": "head"})
    hosts.start("head", "beat", beat_argv(config), {**head_env, "OAR_PROCESS_KIND": "beat"})
    for i, node in enumerate(("node1", "node2"), 1):
        env = {**base_env(state, f"redis://10.213.{i}.1:6379/0"), **node_worker_env(node)}
        hosts.start(node, node, node_worker_argv(node, load_settings(env)), env)
    return head_env


def test_two_node_job_and_a_cut_link(hosts: Hosts, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    head_env = start_cluster(hosts, state)
    engine = create_engine(f"sqlite:///{state / 'oar.db'}")

    def scalar(sql: str) -> object:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()

    def wait(sql: str, expected: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if scalar(sql) == expected:
                return
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.out"))
        raise AssertionError(f"{what} not seen after {timeout} s\n{logs}")

    job = subprocess.run(["ip", "netns", "exec", hosts.ns["head"], str(BIN / "oarsub"), "-l", "/nodes=2/core=1",
                          "sort -u $OAR_NODEFILE | tr '\\n' ' '; hostname"], env=head_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=90)
    assert job.returncode == 0, job.stderr
    job_id = int(job.stdout.split("=")[1])
    wait(f"SELECT state FROM jobs WHERE job_id = {job_id}", "Terminated", 60, "the two-node job ending")
    assert (tmp_path / f"OAR.{job_id}.stdout").read_text().startswith("node1 node2 ")

    hosts.link("node2", up=False)
    wait("SELECT count(*) FROM resources WHERE network_address = 'node2' AND state = 'Suspected'", 2, 40,
         "node2 Suspected")
    assert scalar("SELECT count(*) FROM resources WHERE network_address = 'node1' AND state = 'Alive'") == 2
    hosts.link("node2", up=True)
    wait("SELECT count(*) FROM resources WHERE network_address = 'node2' AND state = 'Alive'", 2, 60,
         "node2 Alive again")


def test_oarsh_crosses_the_hosts_to_the_job_nodes_only(hosts: Hosts, tmp_path: Path) -> None:
    """From a job on node1, oarsh reaches node2 through the network, over TLS, in the job's cgroup there."""
    hosts.route_between_nodes()
    state = tmp_path / "state"
    state.mkdir()
    head_env = start_cluster(hosts, state)
    engine = create_engine(f"sqlite:///{state / 'oar.db'}")

    def submit(resources: str, command: str) -> int:
        done = subprocess.run(["ip", "netns", "exec", hosts.ns["head"], str(BIN / "oarsub"), "-l", resources,
                               command], env=head_env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split("=")[1])

    def ended(job_id: int) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                state_now = connection.execute(text(f"SELECT state FROM jobs WHERE job_id = {job_id}")).scalar()
            if state_now in ("Terminated", "Error"):
                return str(state_now)
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.out"))
        raise AssertionError(f"job {job_id} did not end\n{logs}")

    both = submit("/nodes=2/core=1", "oarsh node2 'echo \"on=$OAR_JOB_ID:$OAR_CPUSET\"'")
    assert ended(both) == "Terminated", (tmp_path / f"OAR.{both}.stderr").read_text()
    out = (tmp_path / f"OAR.{both}.stdout").read_text()
    cpuset = out.strip().split(":", 1)[1]
    assert out.startswith(f"on={both}:") and (not cpuset or cpuset.endswith(f"/node2/{both}"))
    assert f"job-shell on node2: root into job {both}" in (state / "log" / "oar-node-node2.log").read_text()

    alone = submit("/nodes=1/core=1", "oarsh node2 true; oarsh node1 true; echo status=$?")
    ended(alone)
    first = (tmp_path / f"OAR.{alone}.stdout").read_text().strip()
    said = (tmp_path / f"OAR.{alone}.stderr").read_text().strip()
    assert first == "status=255" or "status=0" in first
    assert said.startswith("oarsh: error: ") and " is not a node of job " in said
    assert "refused" in (state / "log" / "oar-node-node2.log").read_text()
