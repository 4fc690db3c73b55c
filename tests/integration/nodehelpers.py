"""Helpers for tests of the node side: a real node worker, and the head's inbox.

The tests play the head: they send node tasks with a Celery app on the test
broker, signed as the head signs them (the node's key is made in the state
directory the first time), and read the node's reports straight from Redis, where the head would:
the batches a node queues for Almighty (``oar:reports``) and the tasks on the
``oar.head`` queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu import Connection

from oar_celery.celery_app import HEAD_QUEUE, create_app, node_queue
from oar_celery.config import load_settings
from oar_celery.node.worker import node_worker_argv, node_worker_env
from oar_celery.protocol.names import Key
from tests.cluster import signed_node_task


def node_env(redis_url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a node worker (and of the test's client app): no database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(
        OAR_STATE_DIR=str(state_dir),
        OAR_BROKER_URL=redis_url,
        OAR_CONFIG_FILE=str(state_dir / "absent.conf"),
        OAR_LOG_LEVEL="DEBUG",
        OAR_KILL_GRACE="1",
        OAR_ALLOW_ROOT_JOBS="yes",  # the tests run jobs as root, who starts them
    )
    env.update(extra)
    return env


class HeadInbox:
    """The ``oar.head`` queue, the queued reports and Finaud's answers, read as the head would: (task name,
    kwargs) pairs."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.connection = Connection(redis_url)
        self.queue = self.connection.SimpleQueue(HEAD_QUEUE)
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def close(self) -> None:
        self.queue.close()
        self.connection.release()
        self.client.close()

    def _drain(self, timeout: float) -> None:
        while (batch := self.client.lpop(Key.QUEUED_REPORTS)) is not None:
            self._add_batch(json.loads(batch))
        while (answer := self.client.rpop(Key.FINAUD_ANSWERS)) is not None:  # as Finaud's round takes them
            self.seen.append(("oar.finaud.answer", {k: v for k, v in json.loads(answer).items() if k != "oar_sig"}))
        try:
            message = self.queue.get(block=True, timeout=timeout)
        except self.queue.Empty:
            return
        message.ack()
        _args, kwargs, _embed = message.decode()
        task = message.headers["task"]
        if task == "oar.head.reports":
            self._add_batch(kwargs["reports"])
        else:
            self.seen.append((task, {k: v for k, v in kwargs.items() if k != "oar_sig"}))

    def _add_batch(self, reports: list[dict[str, Any]]) -> None:
        """A batch is seen as the one-report tasks it stands for."""
        for report in reports:
            fields = {k: v for k, v in report.items() if k not in ("kind", "sig")}
            self.seen.append((f"oar.head.job_{report['kind']}", fields))

    def find(self, task: str, **match: Any) -> list[dict[str, Any]]:
        return [
            kwargs
            for name, kwargs in self.seen
            if name == task and all(kwargs.get(key) == value for key, value in match.items())
        ]

    def wait(self, task: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first ``task`` report whose kwargs include ``match``; waits for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(task, **match)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {task} {match} within {timeout} s; seen {self.seen}")
            self._drain(0.2)

    def count(self, task: str, settle: float = 0.5, **match: Any) -> int:
        """How many ``task`` reports match, after reading what arrives for ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            self._drain(0.1)
        return len(self.find(task, **match))


class NodeWorker:
    """A real ``celery worker`` process serving one emulated node."""

    def __init__(self, host: str, env: dict[str, str], log: Path) -> None:
        self.host = host
        self.env = {**env, **node_worker_env(host)}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeWorker:
        argv = node_worker_argv(self.host, load_settings(self.env))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Head:
    """The test's view of the head: sends node tasks, reads reports."""

    def __init__(self, env: dict[str, str], inbox: HeadInbox) -> None:
        config = load_settings(env)
        self.app: Celery = create_app(config)
        self.keys = config.keys
        self.inbox = inbox

    def signed(self, host: str, task: str, **kwargs: Any) -> dict[str, Any]:
        """The task's kwargs with the head's signature for ``host``."""
        return signed_node_task(self.keys, host, task, kwargs)

    def send(self, host: str, task: str, **kwargs: Any) -> None:
        self.app.send_task(task, kwargs=self.signed(host, task, **kwargs), queue=node_queue(host))

    def ping(self, host: str, job_ids: list[int], timeout: float = 20.0) -> dict[str, Any]:
        """Ping ``host`` through its queue; the jobs part of its answer."""
        token = uuid.uuid4().hex
        self.send(host, "oar.node.ping", token=token, job_ids=job_ids)
        return self.inbox.wait("oar.finaud.answer", timeout=timeout, token=token, host=host)["jobs"]


def make_spec(job_id: int, command: str, directory: Path | str, host: str, **extra: Any) -> dict[str, Any]:
    """A launch spec shaped like the head Runner's."""
    spec: dict[str, Any] = {
        "job_id": job_id,
        "user": "root",
        "command": command,
        "directory": str(directory),
        "name": f"test{job_id}",
        "walltime": 30,
        "hosts": [host],
        "nodefile": f"{host}\n{host}\n",
        "stdout": str(Path(directory) / f"OAR.{job_id}.stdout"),
        "stderr": str(Path(directory) / f"OAR.{job_id}.stderr"),
        "env": {},
        "array_id": job_id,
        "array_index": 1,
        "checkpoint": 0,
        "checkpoint_signal": None,
        "project": "default",
        "types": [],
        "kill_grace": 1,
    }
    spec.update(extra)
    return spec


def proc_state(pid: int) -> str:
    """The one-letter state of ``pid`` in /proc (``T`` when stopped), ``gone`` if it has ended.

    A process reaped between the open and the read of its stat file fails
    the read with ``ESRCH``: it is gone too.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    state = stat.rsplit(")", 1)[1].split()[0]
    return "gone" if state == "Z" else state


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists (zombies count as gone)."""
    return proc_state(pid) == "gone"


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def is_suspended(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (``T``) or in a frozen cgroup (v1 freezer or v2)."""
    if proc_state(pid) == "T":
        return True
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            state = Path(f"/sys/fs/cgroup/freezer{path}/freezer.state")
            return state.exists() and state.read_text().strip() == "FROZEN"
        if controllers == "":
            freeze = Path(f"/sys/fs/cgroup{path}/cgroup.freeze")
            if freeze.exists() and freeze.read_text().strip() == "1":
                return True
    return False
