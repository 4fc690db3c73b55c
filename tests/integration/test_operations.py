"""What an admin runs and reads: Flower's pages behind a login, the logs and their rotation, one cluster for all.

The cluster logs at INFO, as a production one does, and runs Flower; its head
worker is replaced halfway by one started with ``--daemon``, as an admin starts
it by hand.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

REPO = Path(__file__).parents[2]
PAGES = ("/", "/workers", "/tasks", "/broker", "/worker/node@node1")
API = ("/api/workers", "/api/tasks", "/api/queues/length", "/api/task/types")

#: The newest migration of the package: what a sound database is at.
NEWEST_SCHEMA = max(path.name[:4] for path in
                    (Path(__file__).parents[2] / "oar_celery/db/migrations/versions").glob("0*.py"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Flower:
    """Flower of the test cluster, asked over HTTP with or without its login."""

    def __init__(self, cluster: LocalCluster, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.login = (cluster.state_dir / "flower.auth").read_text().strip()

    def get(self, path: str, login: str | None = "") -> tuple[int, str]:
        request = urllib.request.Request(self.base + path)
        login = self.login if login == "" else login
        if login is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:  # not listening yet
            return 0, ""

    def api(self, path: str) -> Any:
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None


@pytest.fixture(scope="module")
def ops(cluster_factory) -> tuple[LocalCluster, Flower]:  # type: ignore[no-untyped-def]
    port = free_port()
    cluster = cluster_factory(nodes=2, cores=1, flower_port=port, OAR_LOG_LEVEL="INFO", OAR_FLOWER_REFRESH="2")
    flower = Flower(cluster, port)
    cluster.wait_until(lambda: len(flower.api("/api/workers") or {}) >= 3, timeout=60, message="Flower's workers")
    return cluster, flower


def test_flower_asks_for_a_login_on_every_page_and_api_call(ops):
    cluster, flower = ops
    user = flower.login.partition(":")[0]
    for path in PAGES + API:
        assert flower.get(path, login=None)[0] == 401, path
        assert flower.get(path, login=f"{user}:wrong")[0] == 401, path
        assert flower.get(path)[0] == 200, path
    assert (cluster.state_dir / "flower.auth").stat().st_mode & 0o777 == 0o600


def test_flower_broker_page_and_api_give_the_length_of_the_head_and_node_queues(ops):
    cluster, flower = ops
    status, page = flower.get("/broker")
    assert status == 200
    assert "not supported" not in page
    for queue in ("oar.head", "oar.node.node1", "oar.node.node2"):
        assert queue in page
    lengths = {q["name"]: q["messages"] for q in flower.api("/api/queues/length")["active_queues"]}
    assert set(lengths) == {"oar.head", "oar.node.node1", "oar.node.node2"}
    assert all(isinstance(count, int) and count >= 0 for count in lengths.values())


def test_flower_shows_each_worker_under_one_name_across_restarts(ops):
    cluster, flower = ops
    before = set(flower.api("/api/workers?refresh=1"))
    assert {"node@node1", "node@node2"} <= before and any(name.startswith("head@") for name in before)
    cluster.kill_process("node1")
    cluster.restart_process("node1")
    cluster.wait_until(lambda: "node@node1" in (flower.api("/api/workers?refresh=1&workername=node@node1") or {}),
                       timeout=60, message="node1 back in Flower")
    assert set(flower.api("/api/workers")) == before


def register(cluster: LocalCluster, name: str, started: subprocess.CompletedProcess[str]) -> int:
    """Record a process started with ``--daemon`` in cluster.json, so that the cluster's ``down`` stops it."""
    said = re.search(r"started in the background: pid (\d+)", started.stdout)
    assert started.returncode == 0 and said, started.stdout + started.stderr
    entries = [e for e in json.loads((cluster.state_dir / "cluster.json").read_text()) if e["name"] != name]
    (cluster.state_dir / "cluster.json").write_text(json.dumps([*entries, {"name": name, "pid": int(said[1])}]))
    return int(said[1])


def test_flower_started_before_a_node_lists_its_queue_once_it_runs(ops):
    cluster, flower = ops
    cluster.kill_process("node2")
    cluster.kill_process("flower")
    register(cluster, "flower", cluster.admin("flower", "--port", str(flower.port), "--daemon"))
    cluster.wait_until(lambda: "node@node1" in (flower.api("/api/workers") or {}), timeout=60,
                       message="the new Flower up")
    assert "oar.node.node2" not in flower.get("/broker")[1]
    cluster.restart_process("node2")
    cluster.wait_until(lambda: "oar.node.node2" in flower.get("/broker")[1], timeout=30,
                       message="node2's queue on the broker page, without a refresh")


def test_flower_shows_a_jobs_launch_and_its_failure_by_job_id(ops):
    cluster, flower = ops

    def tasks(query: str) -> dict[str, Any]:
        return flower.api(f"/api/tasks?{query}") or {}

    for worker in ("node@node1", "node@node2"):  # Flower turns task events on every 5 s, in workers started since too
        cluster.wait_until(lambda w=worker: tasks(f"taskname=oar.node.ping&workername={w}"), timeout=30,
                           message=f"task events of {worker} in Flower")
    # OAR: a job that exits non-zero is Terminated; one the machinery stops (here its walltime) ends in Error
    failing = cluster.oarsub("-l", "/core=1,walltime=0:00:02", "sleep 60")
    assert cluster.wait_for(failing, timeout=90) == {failing: "Error"}

    launches = cluster.wait_until(lambda: [t for t in tasks("taskname=oar.node.launch_many").values()
                                           if f"'job_id': {failing}," in (t.get("kwargs") or "")],
                                  timeout=30, message="the job's launch in Flower")
    assert launches[0]["worker"] in ("node@node1", "node@node2")
    ends = cluster.wait_until(lambda: [t for t in tasks("search=result:Error").values()
                                       if f"'{failing}': 'Error on node" in (t.get("result") or "")],
                              timeout=30, message="the job's end in Flower")
    assert ends[0]["name"] == "oar.almighty.cycle" and "walltime" in ends[0]["result"]
    assert ends[0]["worker"].startswith("head@")


def test_info_log_names_every_job_and_leaves_celerys_per_task_lines_out(ops):
    cluster, _ = ops
    job_id = cluster.oarsub("-l", "/core=1", "true")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    head = (cluster.state_dir / "log" / "oar-head.log").read_text()
    node_logs = "".join(path.read_text() for path in (cluster.state_dir / "log").glob("oar-node-*.log"))
    for line in (f"(jobs {job_id})", f"job {job_id} sent to node", f"job {job_id} running on node",
                 f"job {job_id} ended on node"):
        assert line in head
    assert f"job {job_id} launched on node" in node_logs
    for chatter in ("celery.app.trace", "celery.worker.strategy", "succeeded in", "] received"):
        assert chatter not in head and chatter not in node_logs
    assert "[DEBUG]" not in head
    beat = (cluster.state_dir / "log" / "oar-beat.log").read_text()
    assert "beat: Starting..." in beat and "Sending due task" not in beat


def status_lines(cluster: LocalCluster, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    done = cluster.run("oar-celery", "status", *args, env=env)
    lines = done.stdout.splitlines()
    return done.returncode, {line.split()[0]: line for line in lines[1:]}


def test_status_shows_every_process_alive_and_taking_work(ops):
    cluster, _ = ops
    code, rows = cluster.wait_until(lambda: (found := status_lines(cluster)) and found[0] == 0 and found,
                                    timeout=30, message="every process healthy")
    assert set(rows) == {"head", "beat", "flower", "node1", "node2"}
    for name in ("head", "node1", "node2"):
        assert rows[name].split()[2:4] == ["up", "yes"], rows[name]
    assert "answered Finaud's ping" in rows["node1"] and "last Almighty cycle" in rows["head"]
    assert status_lines(cluster, "--process", "node1")[0] == 0


def test_status_tells_a_node_that_lives_but_takes_no_work(ops):
    cluster, _ = ops
    cluster.signal_process("node2", signal.SIGSTOP)
    try:
        code, rows = cluster.wait_until(lambda: (found := status_lines(cluster)) and "NO" in found[1]["node2"]
                                        and found, timeout=30, message="node2 seen not consuming")
        assert code == 1 and rows["node2"].split()[2:4] == ["up", "NO"]
        assert "never answered" in rows["node2"] or "missed Finaud" in rows["node2"]
        assert status_lines(cluster, "--process", "node2")[0] == 1
        assert status_lines(cluster, "--process", "node1")[0] == 0
    finally:
        cluster.signal_process("node2", signal.SIGCONT)
    cluster.wait_until(lambda: status_lines(cluster, "--process", "node2")[0] == 0, timeout=30,
                       message="node2 answering again")


def test_doctor_passes_a_sound_cluster_and_names_each_check(ops):
    cluster, _ = ops
    done = cluster.admin("doctor", "--listen", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("ok") and "broker" in line and "answers" in line for line in lines)
    assert any(line.startswith("ok") and f"schema {NEWEST_SCHEMA} (the newest)" in line for line in lines)
    assert any(line.startswith("ok") and "clock of node@node1" in line for line in lines)
    assert any(line.startswith("WARN") and "OAR_AUTH_KEY_FILE" in line for line in lines)
    assert any(line.startswith("ok") and "signing keys in" in line and "3 key(s)" in line for line in lines)
    assert re.fullmatch(r"\d+ checks: 0 failed, \d+ warnings", lines[-1])


def test_doctor_and_status_fail_in_one_line_when_the_broker_is_down(ops):
    cluster, _ = ops
    down = {"OAR_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = cluster.run("oar-celery", "doctor", env=down)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("FAIL  broker redis://127.0.0.1:")
    assert "does not answer" in done.stdout.splitlines()[0]
    status = cluster.run("oar-celery", "status", env=down)
    assert status.returncode == 1 and len(status.stderr.strip().splitlines()) == 1
    assert status.stderr.startswith("oar-celery: error:")


def test_doctor_fails_on_a_schema_of_another_version_and_a_key_others_can_read(ops):
    cluster, _ = ops
    key = cluster.state_dir / "loose.key"
    key.write_text("k" * 64)
    key.chmod(0o644)
    cluster.execute("UPDATE alembic_version SET version_num = '0003'")
    try:
        done = cluster.run("oar-celery", "doctor", "--listen", "1", env={"OAR_AUTH_KEY_FILE": str(key)})
    finally:
        cluster.execute(f"UPDATE alembic_version SET version_num = '{NEWEST_SCHEMA}'")
    assert done.returncode == 1
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert any(f"schema 0003, this package expects {NEWEST_SCHEMA}" in line for line in fails), done.stdout
    assert any("readable by others (mode 644)" in line for line in fails), done.stdout


def daemon_pid(log: Path, after: int) -> int:
    """The pid of the worker that wrote 'ready' in ``log`` after byte ``after``."""
    found = re.findall(r"\[MainProcess (\d+)\] \[celery\.apps\.worker\] head@\S+ ready", log.read_text()[after:])
    return int(found[-1]) if found else 0


def replace_head_with_a_daemon(cluster: LocalCluster) -> None:
    """Stop the cluster's head worker and start ``oar-celery worker head --daemon`` in its place."""
    log = cluster.state_dir / "log" / "oar-head.log"
    cluster.kill_process("head")
    mark = log.stat().st_size
    started = cluster.admin("worker", "head", "--daemon")
    said = re.fullmatch(r"head started in the background: pid (\d+), log (\S+)\n", started.stdout)
    assert said and said.group(2) == str(log), started.stdout + started.stderr
    pid = register(cluster, "head", started)
    assert cluster.wait_until(lambda: daemon_pid(log, mark), timeout=60, message="the daemonised head ready") == pid


def test_a_daemonised_head_writes_each_line_once(ops):
    cluster, _ = ops
    replace_head_with_a_daemon(cluster)
    log = cluster.state_dir / "log" / "oar-head.log"
    mark = log.stat().st_size
    job_id = cluster.oarsub("-l", "/core=1", "true")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    cluster.wait_until(lambda: f"job {job_id} ended" in log.read_text()[mark:], message="the end in the log")
    lines = [line for line in log.read_text()[mark:].splitlines() if line.startswith("[")]
    repeated = [line for line, count in collections.Counter(lines).items() if count > 1]
    assert lines and not repeated
    assert sum(f"job {job_id} running on" in line for line in lines) == 1


def rotate(cluster: LocalCluster) -> None:
    """Run logrotate with the shipped file, pointed at the cluster's log directory."""
    logs = cluster.state_dir / "log"
    config = (REPO / "docker" / "logrotate" / "oar-celery").read_text().replace("/var/log/oar/", f"{logs}/")
    (cluster.state_dir / "logrotate.conf").write_text(config)
    done = subprocess.run(["logrotate", "-f", "-s", str(cluster.state_dir / "logrotate.state"),
                           str(cluster.state_dir / "logrotate.conf")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_logrotate_copytruncate_then_new_lines_keep_every_process_logging(ops):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed on this machine")
    cluster, _ = ops
    logs = cluster.state_dir / "log"
    before = cluster.oarsub("-l", "/core=1", "true")
    assert cluster.wait_for(before) == {before: "Terminated"}
    rotate(cluster)
    assert f"job {before} running" in (logs / "oar-head.log.1").read_text()
    job_id = cluster.oarsub("-l", "/resource_id=2", "true")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    head = logs / "oar-head.log"
    cluster.wait_until(lambda: f"job {job_id} ended" in head.read_text(), message="new lines in the rotated log")
    for path in (head, *logs.glob("oar-node-*.log")):
        content = path.read_bytes()
        assert b"\0" not in content, f"{path.name} kept writing at its old offset"
        assert f"job {before} running".encode() not in content
    assert any(f"job {job_id} launched".encode() in p.read_bytes() for p in logs.glob("oar-node-*.log"))


def test_doctor_warns_of_a_broker_anybody_may_use_and_not_of_one_that_asks_a_password(tmp_path: Path):
    from oar_celery.cli.health import check_broker
    from oar_celery.config import load_settings
    from tests.faults.services import PrivateRedis

    def lines(url: str) -> list[str]:
        env = {"OAR_STATE_DIR": str(tmp_path), "OAR_CONFIG_FILE": str(tmp_path / "absent"), "OAR_BROKER_URL": url}
        return [check.line() for check in check_broker(load_settings(env))]

    for password in ("", "s3cret"):
        server = PrivateRedis(tmp_path, password=password)
        server.start()
        try:
            found = lines(server.url)
            wrong = lines(server.url.replace(f":{password}@", ":guess@")) if password else []
        finally:
            server.stop()
        assert found[0].startswith("ok    broker redis://")
        if password:
            assert "s3cret" not in " ".join(found + wrong)
            assert found[1] == "ok    the broker asks for a password (this process is ACL user default)"
            assert wrong[0].startswith("FAIL  broker redis://:****@127.0.0.1:") and len(wrong) == 1
        else:
            assert found[1].startswith("WARN  the broker answers without a password")
