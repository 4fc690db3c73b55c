"""The node side against a real node worker process and a real Redis broker.

No database: the tests play the head, sending node tasks and reading the
reports the node sends to ``oar.head``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oar_celery.celery_app import node_queue
from oar_celery.node.cgroup import find_hierarchy
from oar_celery.node.jobcontrol import job_cgroup
from oar_celery.node.jobdir import JobDir
from tests.integration.nodehelpers import (
    Head,
    HeadInbox,
    NodeWorker,
    make_spec,
    node_env,
    process_gone,
)

pytestmark = pytest.mark.timeout(60)

HOST = "bipbip-node-1"
job_ids = itertools.count(1001)


@pytest.fixture(scope="module")
def env(redis_url: str, state_dir: Path) -> dict[str, str]:
    return node_env(redis_url, state_dir)


@pytest.fixture(scope="module")
def head(env: dict[str, str], redis_url: str) -> Iterator[Head]:
    inbox = HeadInbox(redis_url)
    yield Head(env, inbox)
    inbox.close()


@pytest.fixture(scope="module")
def node(env: dict[str, str], head: Head, state_dir: Path) -> Iterator[NodeWorker]:
    worker = NodeWorker(HOST, env, state_dir / f"{HOST}.log").start()
    try:
        head.ping(HOST, [])
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def launch(head: Head, command: str, directory: Path | str, host: str = HOST, **extra: object) -> int:
    job_id = next(job_ids)
    head.send(host, "oar.node.launch", spec=make_spec(job_id, command, directory, host, **extra))
    return job_id


def test_output_goes_to_stdout_file_and_exit_zero_is_reported(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "echo hello; echo oops >&2", workdir)
    running = head.inbox.wait("oar.head.job_running", job_id=job_id)
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert running["host"] == HOST and running["pid"] > 0
    assert (ended["exit_code"], ended["reason"], ended["host"]) == (0, "exited", HOST)
    assert (workdir / f"OAR.{job_id}.stdout").read_text() == "hello\n"
    assert (workdir / f"OAR.{job_id}.stderr").read_text() == "oops\n"


def test_exit_status_is_reported(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "exit 3", workdir)
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["exit_code"], ended["reason"]) == (3, "exited")


def test_nodefile_and_oar_environment(node: NodeWorker, head: Head, workdir: Path):
    command = 'cat "$OAR_NODEFILE" > nodes.txt; env > env.txt; pwd > pwd.txt'
    job_id = launch(head, command, workdir, walltime=3725, env={"OAR_EXTRA": "yes"})
    assert head.inbox.wait("oar.head.job_ended", job_id=job_id)["exit_code"] == 0
    assert (workdir / "nodes.txt").read_text() == f"{HOST}\n{HOST}\n"
    env = dict(line.split("=", 1) for line in (workdir / "env.txt").read_text().splitlines() if "=" in line)
    assert env["OAR_JOB_ID"] == env["OAR_JOBID"] == str(job_id)
    assert env["OAR_JOB_NAME"] == f"test{job_id}"
    assert env["OAR_JOB_WALLTIME"] == "1:02:05" and env["OAR_JOB_WALLTIME_SECONDS"] == "3725"
    assert env["OAR_WORKDIR"] == env["OAR_O_WORKDIR"] == str(workdir)
    assert env["OAR_NODE_FILE"] == env["OAR_NODEFILE"] and env["OAR_USER"] == "root"
    assert env["OAR_EXTRA"] == "yes" and env["USER"] == "root"
    assert "OAR_BROKER_URL" not in env and "OAR_NODE_HOSTNAME" not in env
    assert (workdir / "pwd.txt").read_text().strip() == str(workdir)


def test_second_launch_of_a_job_is_refused(node: NodeWorker, head: Head, workdir: Path):
    job_id = next(job_ids)
    spec = make_spec(job_id, "echo run >> count.txt; sleep 1", workdir, HOST)
    head.send(HOST, "oar.node.launch", spec=spec)
    head.send(HOST, "oar.node.launch", spec=spec)
    head.inbox.wait("oar.head.job_ended", job_id=job_id)
    # Launched again once ended: refused, and the lost end report is sent again.
    head.send(HOST, "oar.node.launch", spec=spec)
    assert head.inbox.count("oar.head.job_ended", settle=1.5, job_id=job_id) == 2
    assert (workdir / "count.txt").read_text() == "run\n"


def test_launch_many_starts_each_job_and_refuses_only_the_one_already_launched(
    node: NodeWorker, head: Head, workdir: Path
):
    first, second, third = ids = [next(job_ids) for _ in range(3)]
    specs = {job_id: make_spec(job_id, f"echo {job_id} >> runs.txt", workdir, HOST) for job_id in ids}
    head.send(HOST, "oar.node.launch", spec=specs[first])
    head.inbox.wait("oar.head.job_ended", job_id=first)
    head.send(HOST, "oar.node.launch_many", specs=list(specs.values()))
    for job_id in (second, third):
        ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
        assert (ended["exit_code"], ended["reason"]) == (0, "exited")
    assert head.inbox.count("oar.head.job_ended", settle=1.0, job_id=first) == 2  # refused, its end re-sent
    assert sorted((workdir / "runs.txt").read_text().split()) == sorted(str(j) for j in ids)


def test_one_thread_watches_every_running_job_of_a_worker(node: NodeWorker, head: Head, workdir: Path):
    assert node.process is not None
    threads = Path(f"/proc/{node.process.pid}/task")
    ids = [next(job_ids) for _ in range(12)]
    head.send(HOST, "oar.node.launch_many", specs=[make_spec(job_id, "sleep 1", workdir, HOST) for job_id in ids[:2]])
    for job_id in ids[:2]:
        head.inbox.wait("oar.head.job_running", job_id=job_id)
    with_two = len(list(threads.iterdir()))
    head.send(HOST, "oar.node.launch_many", specs=[make_spec(job_id, "sleep 1", workdir, HOST) for job_id in ids[2:]])
    for job_id in ids[2:]:
        head.inbox.wait("oar.head.job_running", job_id=job_id)
    assert len(list(threads.iterdir())) == with_two  # twelve jobs running, no thread more than with two
    for job_id in ids:
        ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
        assert (ended["exit_code"], ended["reason"]) == (0, "exited")


def test_output_file_that_cannot_be_opened_is_a_launch_error(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "echo never", workdir, stdout=str(workdir / "absent" / "out"))
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("launch_error", None)
    assert "could not start the job" in ended["message"]


def test_kill_stops_a_job_that_traps_sigterm(node: NodeWorker, head: Head, workdir: Path):
    command = "sleep 1000 & echo $! > child.pid; trap 'echo term' TERM; while :; do sleep 0.1; done"
    job_id = launch(head, command, workdir)
    pid = head.inbox.wait("oar.head.job_running", job_id=job_id)["pid"]
    time.sleep(0.3)
    child = int((workdir / "child.pid").read_text())
    started = time.monotonic()
    head.send(HOST, "oar.node.kill", job_id=job_id, grace=1)
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("killed", 128 + signal.SIGKILL)
    assert time.monotonic() - started >= 0.9  # SIGKILL waited for the grace
    assert process_gone(pid) and process_gone(child)
    assert "term" in (workdir / f"OAR.{job_id}.stdout").read_text()


def test_walltime_backstop_kills_the_job(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "trap '' TERM; sleep 30", workdir, walltime=1, kill_grace=0.5)
    pid = head.inbox.wait("oar.head.job_running", job_id=job_id)["pid"]
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("walltime", 128 + signal.SIGKILL)
    assert process_gone(pid)


def test_checkpoint_signal_is_left_to_the_head(node: NodeWorker, head: Head, workdir: Path):
    """Sarko sends the checkpoint once; a node sending it too would make the job trap it twice."""
    command = "trap 'echo got >> ckpt.txt' USR1; while :; do sleep 0.1; done"
    job_id = launch(head, command, workdir, walltime=2, checkpoint=1, checkpoint_signal="SIGUSR1", kill_grace=0.5)
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert ended["reason"] == "walltime"
    assert not (workdir / "ckpt.txt").exists()


def test_suspend_and_resume_freeze_the_job_whose_cgroup_has_its_memory_limit(
    node: NodeWorker, head: Head, workdir: Path
):
    job_id = launch(head, "sleep 30", workdir, mem={HOST: 64})
    head.inbox.wait("oar.head.job_running", job_id=job_id)
    cgroup = job_cgroup(JobDir.of(Path(node.env["OAR_STATE_DIR"]) / "nodes", HOST, job_id))
    assert cgroup is not None and cgroup.can_freeze
    memory = next(d for d in cgroup.directories if "/memory/" in d)
    assert Path(memory, "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
    head.send(HOST, "oar.node.suspend", job_id=job_id)
    _until(cgroup.frozen)
    head.send(HOST, "oar.node.resume", job_id=job_id)
    _until(lambda: not cgroup.frozen())
    head.send(HOST, "oar.node.signal", job_id=job_id, signum="TERM")
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("exited", 128 + signal.SIGTERM)
    assert not cgroup.exists()


def test_ping_answers_with_job_states(node: NodeWorker, head: Head, workdir: Path):
    done = launch(head, "exit 5", workdir)
    head.inbox.wait("oar.head.job_ended", job_id=done)
    busy = launch(head, "sleep 30", workdir)
    head.inbox.wait("oar.head.job_running", job_id=busy)
    jobs = head.ping(HOST, [done, busy, 999999])
    assert jobs[str(busy)] == "running" and jobs["999999"] == "unknown"
    assert (jobs[str(done)]["exit_code"], jobs[str(done)]["reason"]) == (5, "exited")
    head.send(HOST, "oar.node.kill", job_id=busy, grace=0.5)
    assert head.inbox.wait("oar.head.job_ended", job_id=busy)["reason"] == "killed"


def test_missing_working_directory_is_a_launch_error(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "true", workdir / "absent")
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("launch_error", None)
    assert "does not exist" in ended["message"]
    assert not head.inbox.find("oar.head.job_running", job_id=job_id)


def test_unknown_user(node: NodeWorker, head: Head, workdir: Path):
    job_id = launch(head, "true", workdir, user="no-such-oar-user")
    ended = head.inbox.wait("oar.head.job_ended", job_id=job_id)
    assert (ended["reason"], ended["exit_code"]) == ("user_unknown", None)
    assert "no-such-oar-user" in ended["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root node worker")
def test_job_runs_as_its_user(node: NodeWorker, head: Head):
    user = pwd.getpwnam("nobody")
    directory = Path(tempfile.mkdtemp(prefix="oar-node-test-"))
    directory.chmod(0o777)
    job_id = launch(head, "id -u; id -g", directory, user="nobody")
    assert head.inbox.wait("oar.head.job_ended", job_id=job_id)["exit_code"] == 0
    stdout = directory / f"OAR.{job_id}.stdout"
    assert stdout.read_text().split() == [str(user.pw_uid), str(user.pw_gid)]
    assert stdout.stat().st_uid == user.pw_uid


def test_restarted_worker_adopts_running_jobs_and_runs_hooks(head: Head, redis_url: str, state_dir: Path):
    host = "bipbip-node-2"
    hooks = Path(tempfile.mkdtemp(prefix="oar-node-hooks-"))
    prologue, epilogue = hooks / "prologue", hooks / "epilogue"
    prologue.write_text('#!/bin/sh\n[ "$1" != "$BAD_PROLOGUE" ] || { echo no way >&2; exit 1; }\n')
    epilogue.write_text('#!/bin/sh\n[ "$1" != "$BAD_EPILOGUE" ] || exit 2\n')
    prologue.chmod(0o755)
    epilogue.chmod(0o755)
    env = node_env(redis_url, state_dir, OAR_PROLOGUE=str(prologue), OAR_EPILOGUE=str(epilogue))
    log = state_dir / f"{host}.log"
    first = NodeWorker(host, env, log).start()
    try:
        orphan = launch(head, "sleep 1000", hooks, host=host)
        pid = head.inbox.wait("oar.head.job_running", job_id=orphan, timeout=20)["pid"]
    finally:
        first.stop(signal.SIGKILL)
    assert not process_gone(pid)
    hierarchy = find_hierarchy("/sys/fs/cgroup")
    assert hierarchy is not None
    stale = Path(hierarchy.bases[0], host, "424243")  # a cgroup made by a worker that died at once
    stale.mkdir()
    second = NodeWorker(host, env, log).start()
    try:
        assert head.ping(host, [orphan])[str(orphan)] == "running"  # adopted, not killed
        assert not stale.exists()
        assert job_cgroup(JobDir.of(state_dir / "nodes", host, orphan)).exists()  # type: ignore[union-attr]
        assert not head.inbox.find("oar.head.job_ended", job_id=orphan)
        head.send(host, "oar.node.kill", job_id=orphan, grace=1)
        ended = head.inbox.wait("oar.head.job_ended", job_id=orphan, timeout=20)
        assert (ended["reason"], ended["exit_code"]) == ("killed", 128 + signal.SIGTERM)
        assert process_gone(pid)
        bad_prologue = next(job_ids)
        bad_epilogue = next(job_ids)
        spec_env = {"BAD_PROLOGUE": str(bad_prologue), "BAD_EPILOGUE": str(bad_epilogue)}
        for job_id in (bad_prologue, bad_epilogue):
            spec = make_spec(job_id, "exit 4", hooks, host, env=spec_env)
            head.send(host, "oar.node.launch", spec=spec)
        ended = head.inbox.wait("oar.head.job_ended", job_id=bad_prologue)
        assert (ended["reason"], ended["exit_code"]) == ("prologue_error", None)
        assert "no way" in ended["message"]
        ended = head.inbox.wait("oar.head.job_ended", job_id=bad_epilogue)
        assert (ended["reason"], ended["exit_code"]) == ("epilogue_error", 4)
    finally:
        second.stop()


def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_kill_of_a_job_this_node_does_not_run(node: NodeWorker, head: Head):
    kwargs = {"job_id": 424242, "grace": 1}
    result = head.app.send_task("oar.node.kill", kwargs=head.signed(HOST, "oar.node.kill", **kwargs),
                                queue=node_queue(HOST))
    assert result.get(timeout=10) == {"job_id": 424242, "killed": False, "state": "unknown"}


def fresh_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter, as a worker would start: nothing imported yet."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_a_node_worker_never_loads_the_head_or_the_database_layer(
    env: dict[str, str], head: Head, state_dir: Path, workdir: Path, tmp_path: Path
) -> None:
    """A real node worker, after it ran a job and answered a ping: no head module, no database layer loaded.

    The node has no database access (SQLAlchemy alone would cost its worker
    17 MB), and the head's modules are not its to run. A ``sitecustomize``
    on the worker's path writes its ``sys.modules`` when it exits.
    """
    listing = tmp_path / "modules.txt"
    (tmp_path / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    )
    host = "nodeimports"
    path = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH", "")]))
    worker = NodeWorker(host, {**env, "PYTHONPATH": path}, state_dir / f"{host}.log").start()
    try:
        head.ping(host, [])
        job_id = launch(head, "true", workdir, host=host)
        head.inbox.wait("oar.head.job_ended", job_id=job_id, exit_code=0)
        head.ping(host, [job_id])
    finally:
        worker.stop()
    loaded = listing.read_text().split()
    assert "oar_celery.tasks.bipbip" in loaded  # the listing is the worker's
    forbidden = ("oar_celery.head", "oar_celery.db", "oar_celery.almighty", "sqlalchemy", "psycopg2")
    assert [name for name in loaded if name.split(".")[0] in forbidden or name.startswith(forbidden)] == []


@pytest.mark.parametrize(("kind", "emulated"), [("node-node7", False), ("head", True)])
def test_only_the_head_emulates_acknowledgements_on_redis(kind: str, emulated: bool) -> None:
    """A node acknowledges every task as it starts it: keeping each message in Redis until then buys nothing."""
    code = "from oar_celery.celery_app import app; print(app.conf.broker_transport_options['ack_emulation'])"
    done = fresh_python(code, OAR_PROCESS_KIND=kind)
    assert done.stdout.strip() == str(emulated), done.stderr


def test_without_a_writable_cgroup_jobs_are_pinned_to_their_cpus(head: Head, redis_url: str, state_dir: Path):
    """The node says once that it falls back to CPU affinity; jobs still see only their CPUs."""
    host = "bipbip-node-3"
    no_cgroups = Path(tempfile.mkdtemp(prefix="oar-no-cgroup-"))
    no_cgroups.chmod(0o555)
    log = state_dir / f"{host}.log"
    worker = NodeWorker(host, node_env(redis_url, state_dir, OAR_CGROUP_ROOT=str(no_cgroups)), log).start()
    directory = Path(tempfile.mkdtemp(prefix="oar-affinity-"))
    command = "nproc; grep Cpus_allowed_list /proc/self/status"
    try:
        ids = [launch(head, command, directory, host=host, cpusets={host: [cpu]}) for cpu in ("1", "0")]
        for job_id in ids:
            assert head.inbox.wait("oar.head.job_ended", job_id=job_id, timeout=20)["exit_code"] == 0
    finally:
        worker.stop()
    seen = [(directory / f"OAR.{job_id}.stdout").read_text().split() for job_id in ids]
    assert seen == [["1", "Cpus_allowed_list:", "1"], ["1", "Cpus_allowed_list:", "0"]]
    logged = log.read_text() + "".join(path.read_text() for path in (state_dir / "log").glob(f"oar-node-{host}*.log"))
    assert logged.count(f"no writable cgroup hierarchy under {no_cgroups}") == 1  # its own log file, or stderr
    assert not any(JobDir.of(state_dir / "nodes", host, job_id).cgroup_text for job_id in ids)
