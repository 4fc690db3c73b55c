"""Roles on the broker: what a user, or a node, can still do on the Redis of a cluster under ``up --auth``.

Every check is made from the attacker's side: a throwaway unix account with
``redis-cli`` and the users' URL (the anonymous submit-only role), or a node's
own credentials, against the cluster's own Redis and its ACL file; the
machine's shared Redis is never given an ACL. The cluster itself runs jobs
through the same ACL, and Redis's ACL log shows that none of its processes
was ever refused.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oar_celery.protocol import broker_acl
from oar_celery.protocol.names import Key, node_queue, unacked_keys
from tests.cluster import LocalCluster
from tests.conftest import REDIS_SERVER

pytestmark = pytest.mark.cluster

AS_USER = Path(__file__).with_name("as_user.py")
ROOT = Path(__file__).parents[2]
#: kombu's separator between a queue's name and its priority: ``oar.node.node1\x06\x163``.
PRIORITY = "\x06\x163"


def redis_cli(url: str, *command: str, user: str | None = None) -> str:
    """One command with the real ``redis-cli``, as ``user`` (a unix account) if given; its whole output."""
    argv = ["redis-cli", "--no-auth-warning", "-u", url, *command]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def refused(output: str) -> bool:
    """Redis's refusal by the ACL: of a command, or of a command inside a script."""
    return "NOPERM" in output or "The user executing the script can't run this command" in output


def as_user(cluster: LocalCluster, user: str, command: str, *args: str,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(AS_USER), user, command, *args], env=env, cwd=cwd or "/",
                          capture_output=True, text=True, timeout=60)


def submit_as(cluster: LocalCluster, user: str, directory: Path, *args: str) -> tuple[int, str]:
    done = as_user(cluster, user, "oarsub", "-d", str(directory), *args, cwd=directory)
    match = re.search(r"^OAR_JOB_ID=(\d+)$", done.stdout, re.M)
    assert done.returncode == 0 and match, f"oarsub as {user}: {done.stdout} {done.stderr}"
    return int(match.group(1)), done.stdout


# ------------------------------------------------------------------ a Redis of the test's own


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A Redis with the ACL file of a cluster of nodes node1, node10, node1.a: its base URL and the passwords."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    from oar_celery.cluster import redis_argv

    directory = tmp_path_factory.mktemp("acl-redis")
    hosts = ["node1", "node10", "node1.a"]
    passwords = broker_acl.new_passwords(hosts)
    (directory / "users.acl").write_text(broker_acl.acl_file(hosts, passwords, db=0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(redis_argv(directory, port), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"redis://127.0.0.1:{port}/0"
    head = broker_acl.url_for(base, broker_acl.HEAD_USER, passwords[broker_acl.HEAD_USER])
    for _ in range(200):
        if redis_cli(head, "PING").strip() == "PONG":
            break
        time.sleep(0.05)
    try:
        yield base, passwords
    finally:
        server.terminate()
        server.wait(10)


def dry_run(base: str, passwords: dict[str, str], user: str, *command: str) -> str:
    """Whether ``user`` may run ``command``: Redis's own answer (``ACL DRYRUN``), asked as the head."""
    head = broker_acl.url_for(base, broker_acl.HEAD_USER, passwords[broker_acl.HEAD_USER])
    return redis_cli(head, "ACL", "DRYRUN", user, *command).strip()


def test_a_node_takes_its_own_queue_and_nothing_of_a_node_with_a_longer_name(acl_redis) -> None:  # type: ignore[no-untyped-def]
    base, passwords = acl_redis
    node1 = broker_acl.node_user("node1")
    assert dry_run(base, passwords, node1, "BRPOP", node_queue("node1"), node_queue("node1") + PRIORITY, "1") == "OK"
    for other in ("node10", "node1.a"):
        assert dry_run(base, passwords, node1, "BRPOP", node_queue(other), "1") != "OK"
        assert dry_run(base, passwords, node1, "LLEN", node_queue(other) + PRIORITY) != "OK"
        assert dry_run(base, passwords, node1, "HGETALL", unacked_keys(other)[0]) != "OK"
    assert dry_run(base, passwords, node1, "HGETALL", "unacked") != "OK"  # kombu's shared default
    assert dry_run(base, passwords, node1, "HGETALL", unacked_keys("node1")[0]) == "OK"


def test_a_node_sends_events_but_never_hears_other_workers_tasks(acl_redis) -> None:  # type: ignore[no-untyped-def]
    base, passwords = acl_redis
    node1 = broker_acl.node_user("node1")
    assert dry_run(base, passwords, node1, "PUBLISH", "/0.celeryev/worker.heartbeat", "{}") == "OK"
    assert dry_run(base, passwords, node1, "SUBSCRIBE", "/0.celeryev/task.received") != "OK"
    assert dry_run(base, passwords, node1, "PSUBSCRIBE", "/0.celery.pidbox") == "OK"
    assert dry_run(base, passwords, node1, "PUBLISH", "/0.celery.pidbox", "{}") != "OK"  # no remote control


def test_a_node_pushes_reports_and_never_reads_them_nor_the_head_queue(acl_redis) -> None:  # type: ignore[no-untyped-def]
    base, passwords = acl_redis
    node1 = broker_acl.node_user("node1")
    assert dry_run(base, passwords, node1, "RPUSH", Key.QUEUED_REPORTS, "[]") == "OK"
    assert dry_run(base, passwords, node1, "LPUSH", "oar.head", "{}") == "OK"
    for command in (("LRANGE", Key.QUEUED_REPORTS, "0", "-1"), ("LRANGE", "oar.head", "0", "-1"),
                    ("DEL", "oar.head"), ("LPOP", Key.QUEUED_REPORTS), ("SET", "oar:seen:node10:n", "1"),
                    ("HGETALL", Key.REFUSED), ("KEYS", "*"), ("FLUSHDB",), ("CONFIG", "GET", "*")):
        assert dry_run(base, passwords, node1, *command) != "OK", command
    assert dry_run(base, passwords, node1, "SET", "oar:seen:node1:n", "1", "NX", "EX", "60") == "OK"
    assert dry_run(base, passwords, node1, "HINCRBY", Key.REFUSED, "launch:node1", "1") == "OK"


def test_a_node_queues_its_reports_with_its_role_and_cannot_stall_almighty(acl_redis) -> None:  # type: ignore[no-untyped-def]
    """The real report script runs under a node's role; a ``QUEUED`` a node set for ever is dropped."""
    import redis

    from oar_celery.protocol.bus import QUEUED_TTL, queue_reports

    base, passwords = acl_redis
    node1 = redis.Redis.from_url(broker_acl.url_for(base, "oar-node-node1", passwords["oar-node-node1"]))
    assert node1.set(Key.QUEUED, "1")  # no expiry: no cycle task would ever be pushed again
    report = {"kind": "ended", "job_id": 1, "host": "node1", "status": 0}
    assert queue_reports([report], client=node1)  # type: ignore[list-item]
    assert 0 < node1.ttl(Key.QUEUED) <= QUEUED_TTL
    head = redis.Redis.from_url(broker_acl.url_for(base, "oar-head", passwords["oar-head"]))
    assert head.llen("oar.head") == 1 and head.llen(Key.QUEUED_REPORTS) == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        node1.lrange(Key.QUEUED_REPORTS, 0, -1)


def test_the_acl_file_holds_no_password(acl_redis) -> None:  # type: ignore[no-untyped-def]
    _, passwords = acl_redis
    text = broker_acl.acl_file(["node1", "node10", "node1.a"], passwords)
    assert not any(password in text for password in passwords.values())


def test_a_node_name_that_would_widen_its_rights_is_refused() -> None:
    for bad in ("node*", "node[1]", "a b", "n?"):
        with pytest.raises(ValueError, match="not a node name"):
            broker_acl.node(bad, "x")


# ------------------------------------------------------------------ a whole cluster under up --auth


@pytest.fixture(scope="module")
def acl_cluster(cluster_factory, accounts):  # type: ignore[no-untyped-def]
    authd = f"/tmp/oar-authd-{uuid.uuid4().hex[:8]}.sock"
    return cluster_factory(nodes=2, cores=2, up_args=("--auth",), OAR_AUTH_SOCKET=authd)


def users_url(cluster: LocalCluster) -> str:
    return cluster.env["OAR_BROKER_URL"]


def own_url(cluster: LocalCluster, user: str) -> str:
    return (cluster.state_dir / "broker" / f"{user}.url").read_text().strip()


def test_up_auth_runs_a_redis_of_its_own_and_leaves_the_shared_one_alone(acl_cluster) -> None:  # type: ignore[no-untyped-def]
    url = urlsplit(users_url(acl_cluster))
    shared = urlsplit(REDIS_SERVER)
    assert (url.hostname, url.port) != (shared.hostname, shared.port or 6379)
    assert not url.password  # users need no broker credentials
    assert redis_cli(f"{REDIS_SERVER}/0", "ACL", "USERS").split() == ["default"]
    for path in (acl_cluster.state_dir / "broker").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for user in ("oar-head", "oar-node-node1", "oar-node-node2"):
        assert urlsplit(own_url(acl_cluster, user)).username == user


def test_a_user_cannot_read_delete_or_write_a_node_queue(acl_cluster, accounts) -> None:  # type: ignore[no-untyped-def]
    bob, url = accounts["bob"], users_url(acl_cluster)
    forged = '{"task": "oar.node.launch", "user": "root"}'
    for command in (("LRANGE", node_queue("node1"), "0", "-1"), ("DEL", node_queue("node1")),
                    ("LPUSH", node_queue("node1"), forged), ("BRPOP", node_queue("node2"), "1"),
                    ("RPUSH", Key.QUEUED_REPORTS, "[]"), ("HGETALL", "unacked")):
        assert refused(redis_cli(url, *command, user=bob)), command


def test_a_user_pushes_to_the_head_queue_but_cannot_read_it(acl_cluster, accounts) -> None:  # type: ignore[no-untyped-def]
    bob, url = accounts["bob"], users_url(acl_cluster)
    for command in (("LRANGE", "oar.head", "0", "-1"), ("LPOP", "oar.head"), ("BRPOP", "oar.head", "1"),
                    ("LLEN", "oar.head"), ("DEL", "oar.head"), ("LINDEX", "oar.head", "0")):
        assert refused(redis_cli(url, *command, user=bob)), command


def test_a_user_finds_no_way_to_another_users_answer(acl_cluster, accounts) -> None:  # type: ignore[no-untyped-def]
    """Answers are under names the asker chose (uuid4) or was told (a reply token): nothing lists them."""
    bob, url = accounts["bob"], users_url(acl_cluster)
    for command in (("KEYS", "*"), ("SCAN", "0"), ("RANDOMKEY",), ("PUBSUB", "CHANNELS"),
                    ("PSUBSCRIBE", "celery-task-meta-*"), ("MONITOR",), ("CLIENT", "LIST"),
                    ("BLPOP", "oar:reply:1", "1"), ("CONFIG", "GET", "*"), ("ACL", "LIST")):
        assert refused(redis_cli(url, *command, user=bob)), command
    auth_key = acl_cluster.state_dir / "auth.key"  # reply tokens are HMACs under it: bob cannot make one
    assert stat.S_IMODE(auth_key.stat().st_mode) == 0o600
    assert "Permission denied" in subprocess.run(
        ["runuser", "-u", bob, "--", "cat", str(auth_key)], capture_output=True, text=True).stderr


def test_a_user_cannot_take_another_users_reservation_verdict(acl_cluster, accounts) -> None:  # type: ignore[no-untyped-def]
    """The verdict waits under a name made with the cluster's key: what bob can compute names nothing."""
    from oar_celery.protocol.auth import read_key, reply_token
    from oar_celery.protocol.names import reply_key

    bob, url, head = accounts["bob"], users_url(acl_cluster), own_url(acl_cluster, "oar-head")
    job_id = 424242
    alices = reply_key(job_id, reply_token(read_key(str(acl_cluster.state_dir / "auth.key")), job_id))
    redis_cli(head, "RPUSH", alices, '{"status": "granted", "start": 1}')
    try:
        for guess in (reply_key(job_id, reply_token(b"", job_id)), reply_key(job_id, "0" * 32)):
            assert redis_cli(url, "BLPOP", guess, "1", user=bob).strip() == "", guess
        assert refused(redis_cli(url, "BLPOP", f"oar:reply:{job_id}", "1", user=bob))
        assert redis_cli(head, "LLEN", alices).strip() == "1"  # still there for alice
    finally:
        redis_cli(head, "DEL", alices)


def test_a_node_cannot_read_another_nodes_queue(acl_cluster) -> None:  # type: ignore[no-untyped-def]
    node1 = own_url(acl_cluster, "oar-node-node1")
    for command in (("LRANGE", node_queue("node2"), "0", "-1"), ("BRPOP", node_queue("node2"), "1"),
                    ("LLEN", node_queue("node2")), ("LRANGE", "oar.head", "0", "-1"),
                    ("HGETALL", unacked_keys("node2")[0]), ("LPUSH", node_queue("node2"), "{}"),
                    # a script may only run what the node may run itself
                    ("EVAL", "return redis.call('lrange', KEYS[1], 0, -1)", "1", "oar.head")):
        assert refused(redis_cli(node1, *command)), command
    assert redis_cli(node1, "LLEN", node_queue("node1")).strip().isdigit()


def test_the_cluster_runs_users_jobs_with_the_acl_on(acl_cluster, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    """Submit, run, oarstat, oardel and a reservation's verdict, as a user without broker credentials."""
    head = own_url(acl_cluster, "oar-head")
    redis_cli(head, "ACL", "LOG", "RESET")
    alice = accounts["alice"]
    done, _ = submit_as(acl_cluster, alice, shared_dir, "-l", "/nodes=2/core=1", "hostname")
    assert acl_cluster.wait_for(done)[done] == "Terminated"
    assert (shared_dir / f"OAR.{done}.stdout").read_text().strip()
    long, _ = submit_as(acl_cluster, alice, shared_dir, "-l", "/core=1", "sleep 60")
    acl_cluster.wait_until(lambda: acl_cluster.state(long) == "Running", message=f"job {long} running")
    listed = as_user(acl_cluster, alice, "oarstat", "-j", str(long), "-s")
    assert listed.stdout.strip() == f"{long}: Running", listed.stderr
    deleted = as_user(acl_cluster, alice, "oardel", str(long))
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert acl_cluster.wait_for(long)[long] in ("Error", "Terminated")
    reserved, output = submit_as(acl_cluster, alice, shared_dir, "-r", "2031-01-01 10:00:00", "-l", "/core=1", "true")
    assert "Reservation valid --> OK" in output
    assert acl_cluster.job(reserved)["job_user"] == alice
    denials = redis_cli(head, "ACL", "LOG")
    assert "username" not in denials, f"a cluster process was refused by the ACL:\n{denials}"


def test_acl_prints_the_file_of_a_real_cluster_and_keeps_each_users_password(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    argv = [sys.executable, "-m", "oar_celery.cli.admin", "acl", "--nodes", "node[1-3]",
            "--url", "redis://redis.example.org:6379/2", "--secrets", str(secrets), "--users", "alice"]
    env = {**os.environ, "OAR_STATE_DIR": str(tmp_path), "OAR_CONFIG_FILE": str(tmp_path / "absent.conf")}
    first = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    second = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    assert first.stdout == second.stdout
    names = [line.split()[1] for line in first.stdout.splitlines()]
    assert names == ["oar-head", "oar-user", "oar-user-alice", "oar-node-node1", "oar-node-node2", "oar-node-node3",
                     "default"]
    node2 = urlsplit((secrets / "oar-node-node2.url").read_text().strip())
    assert (node2.username, node2.hostname, node2.path) == ("oar-node-node2", "redis.example.org", "/2")
    assert stat.S_IMODE((secrets / "oar-node-node2.url").stat().st_mode) == 0o600
    assert "&/2.celery.pidbox" in first.stdout
    bad = subprocess.run([*argv[:5], "node*"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_without_anonymous_connections_users_need_the_users_role() -> None:
    text = broker_acl.acl_file(["node1"], broker_acl.new_passwords(["node1"]), anonymous=False)
    assert text.splitlines()[-1].startswith("user default off ")
    assert any(line.startswith("user oar-user on #") for line in text.splitlines())
