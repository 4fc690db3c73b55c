"""A real local cluster for the integration tests, driven through OAR's own commands.

``LocalCluster`` starts the same processes as ``oar-celery up`` (head worker,
beat, one worker per node, optionally Flower) against a fresh PostgreSQL
database and the test session's Redis database, then runs ``oarsub``,
``oarstat``... as subprocesses, and reads the database for assertions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

BIN = Path(sys.executable).parent
FINAL = ("Terminated", "Error")


def signed_node_task(keys_dir: Path, host: str, task: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A node task's kwargs signed as the head signs them, with ``host``'s key (made if it has none)."""
    from oar_celery.protocol.signing import HEAD, TASK_FIELD, create_keys, node_key_path, read_key, sign, task_subject

    create_keys(keys_dir, [host])
    key = read_key(node_key_path(keys_dir, host))
    assert key is not None
    return {**kwargs, TASK_FIELD: sign(key, HEAD, task_subject(task, host), kwargs)}


def command_path(name: str) -> str:
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


class LocalCluster:
    """One cluster of emulated nodes, its commands and its database."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.state_dir = Path(env["OAR_STATE_DIR"])
        self.engine: Engine = create_engine(env["OAR_DATABASE_URL"], pool_pre_ping=True)
        self.hosts: list[str] = []

    # processes -------------------------------------------------------------------------------
    def up(self, nodes: int = 2, cores: int = 2, cpus: int = 1, flower_port: int = 0, timeout: float = 60,
           extra: tuple[str, ...] = ()) -> None:
        self.hosts = [f"node{i}" for i in range(1, nodes + 1)]
        result = self.admin(
            "up", "--nodes", str(nodes), "--cores", str(cores), "--cpus", str(cpus),
            "--flower-port", str(flower_port), "--detach", "--timeout", str(timeout), *extra, timeout=timeout + 30,
        )
        assert result.returncode == 0, f"cluster did not start: {result.stderr}\n{self.logs()}"
        if "--auth" in extra:  # a Redis of its own: the commands take the users' URL that up wrote
            from oar_celery.config import read_conf_file

            self.env["OAR_BROKER_URL"] = read_conf_file(self.state_dir / "oar.conf")["OAR_BROKER_URL"]

    def down(self) -> None:
        self.admin("down", timeout=60)
        self.engine.dispose()

    def processes(self) -> dict[str, int]:
        path = self.state_dir / "cluster.json"
        return {entry["name"]: entry["pid"] for entry in json.loads(path.read_text())}

    def pids_of(self, name: str) -> list[int]:
        """The process group of one cluster process (its main pid first)."""
        leader = self.processes()[name]
        found = subprocess.run(["pgrep", "-g", str(leader)], capture_output=True, text=True).stdout.split()
        return [leader] + [int(pid) for pid in found if int(pid) != leader]

    def signal_process(self, name: str, signum: int) -> None:
        """Send a signal to every process of one cluster process (e.g. ``node1``, ``head``)."""
        os.killpg(self.processes()[name], signum)

    def kill_process(self, name: str) -> None:
        self.signal_process(name, signal.SIGKILL)
        time.sleep(0.2)

    def restart_process(self, name: str) -> None:
        """Start one cluster process again, with the same command line, and record its pid."""
        from oar_celery.cluster import Process, beat_argv, head_worker_argv, pid_file, start
        from oar_celery.config import load_settings
        from oar_celery.node.worker import node_worker_argv, node_worker_env

        config = load_settings(self.env)
        if name == "head":
            argv, kind, extra = head_worker_argv(config), "head", {}
        elif name == "beat":
            argv, kind, extra = beat_argv(config), "beat", {}
        else:
            argv, kind, extra = node_worker_argv(name, config), f"node-{name}", node_worker_env(name)
        env = dict(self.env)
        own = self.state_dir / "broker" / ("oar-head.url" if name in ("head", "beat") else f"oar-node-{name}.url")
        if own.exists():  # up --auth: the process's own broker user, as up gave it
            env.pop("OAR_BROKER_URL", None)
            env["OAR_BROKER_URL_FILE"] = str(own)
        old_env = os.environ.copy()
        os.environ.clear()
        os.environ.update(env)
        try:
            process = start(name, argv, kind=kind, extra_env=extra, log_dir=config.logs)
        finally:
            os.environ.clear()
            os.environ.update(old_env)
        entries = [e for e in json.loads(pid_file(config).read_text()) if e["name"] != name]
        entries.append(Process(name, process.pid).__dict__)
        pid_file(config).write_text(json.dumps(entries))

    def node_task(self, host: str, task: str, **kwargs: Any) -> dict[str, Any]:
        """A node task's kwargs, signed as this cluster's head would sign them."""
        from oar_celery.config import load_settings

        return signed_node_task(load_settings(self.env).keys, host, task, kwargs)

    def logs(self, tail: int = 40) -> str:
        out = []
        for path in sorted((self.state_dir / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    # commands --------------------------------------------------------------------------------
    def run(self, name: str, *args: str, timeout: float = 60, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command_path(name), *args], env={**self.env, **(env or {})}, cwd=cwd or self.workdir,
            capture_output=True, text=True, timeout=timeout,
        )

    def admin(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("oar-celery", *args, timeout=timeout)

    def oarsub(self, *args: str, **kwargs: Any) -> int:
        """Submit a job; its id. Fails the test if oarsub refused it."""
        result = self.run("oarsub", *args, **kwargs)
        match = re.search(r"^OAR_JOB_ID=(\d+)$", result.stdout, re.M)
        assert result.returncode == 0 and match, f"oarsub {args} failed: {result.stdout} {result.stderr}"
        return int(match.group(1))

    # database --------------------------------------------------------------------------------
    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def execute(self, sql: str, **params: Any) -> None:
        """Change the database behind the cluster's back (to set up a case)."""
        with self.engine.begin() as connection:
            connection.execute(text(sql), params)

    def scalar(self, sql: str, **params: Any) -> Any:
        rows = self.query(sql, **params)
        return rows[0][0] if rows else None

    def job(self, job_id: int) -> dict[str, Any]:
        rows = self.query("SELECT * FROM jobs WHERE job_id = :id", id=job_id)
        return dict(rows[0]._mapping) if rows else {}

    def state(self, job_id: int) -> str | None:
        return self.scalar("SELECT state FROM jobs WHERE job_id = :id", id=job_id)

    def wait_for(
        self, job_ids: int | Iterable[int], states: Iterable[str] = FINAL, timeout: float = 60
    ) -> dict[int, str]:
        """Wait until every job is in one of ``states``; their states."""
        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        wanted = set(states)
        deadline = time.monotonic() + timeout
        current: dict[int, str] = {}
        while time.monotonic() < deadline:
            rows = self.query("SELECT job_id, state FROM jobs WHERE job_id = ANY(:ids)", ids=ids)
            current = {job_id: state for job_id, state in rows}
            if len(current) == len(ids) and all(state in wanted for state in current.values()):
                return current
            time.sleep(0.2)
        raise AssertionError(f"jobs not in {sorted(wanted)} after {timeout} s: {current}\n{self.logs()}")

    def end_active_jobs(self, timeout: float = 30) -> None:
        """``oardel`` every job that has not ended, and wait for their end: a test leaves no job behind."""
        ids = [row[0] for row in self.query("SELECT job_id FROM jobs WHERE state <> ALL(:s)", s=list(FINAL))]
        if ids:
            self.run("oardel", *map(str, ids))
            self.wait_for(ids, timeout=timeout)

    def wait_until(self, predicate: Any, timeout: float = 30, message: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{message} not met after {timeout} s\n{self.logs()}")

    def events(self, job_id: int) -> list[str]:
        rows = self.query("SELECT type FROM event_logs WHERE job_id = :id ORDER BY event_id", id=job_id)
        return [row[0] for row in rows]

    def resource_states(self) -> dict[str, set[str]]:
        states: dict[str, set[str]] = {}
        for host, state in self.query("SELECT network_address, state FROM resources"):
            states.setdefault(host, set()).add(state)
        return states
