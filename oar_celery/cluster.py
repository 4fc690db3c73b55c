"""Starting the cluster's processes: each alone (a real cluster) or all on one machine (``up``).

``oar-celery up`` runs exactly the processes an admin starts by hand on a
real cluster, with the same command lines: the head worker, beat, one worker
per emulated compute node, and Flower. Their process ids are kept in
``<state dir>/cluster.json`` so that ``oar-celery down`` stops them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from oar_celery.celery_app import HEAD_QUEUE, HEAD_TASK_MODULES
from oar_celery.config import Settings, mask

CELERY = [sys.executable, "-m", "celery", "-A", "oar_celery.celery_app:app"]


def head_worker_argv(config: Settings) -> list[str]:
    """The head worker: consumes ``oar.head``; the only process that writes the database."""
    return [
        *CELERY, "worker", "-Q", HEAD_QUEUE, "-n", f"head@{socket.gethostname()}",
        "--pool", "prefork", "--concurrency", str(config.head_concurrency),
        "--prefetch-multiplier", "1", "-O", "fair", "-I", ",".join(HEAD_TASK_MODULES),
        "--loglevel", config.log_level, "--without-gossip", "--without-mingle",
    ]


def beat_argv(config: Settings) -> list[str]:
    state = Path(config.state_dir)
    return [
        *CELERY, "beat", "--schedule", str(state / "celerybeat-schedule"), "--loglevel", config.log_level,
    ]


def flower_argv(config: Settings, port: int | None = None) -> list[str]:
    return [
        *CELERY, "flower", f"--address={config.flower_address}",
        f"--port={config.flower_port if port is None else port}",
        f"--db={Path(config.state_dir) / 'flower.db'}", "--persistent=False",
    ]


def flower_env(config: Settings) -> dict[str, str]:
    """Flower asks for a login on every page and API call: ``FLOWER_BASIC_AUTH``, else the auth file's.

    The file (``OAR_FLOWER_AUTH_FILE``, default ``<state dir>/flower.auth``, mode
    0600) holds ``user:password``; it is made with a random password the first time.
    """
    if os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH"):
        return {}
    return {"FLOWER_BASIC_AUTH": flower_login(config)}


def flower_login(config: Settings) -> str:
    """``user:password`` of Flower's login, from its file, made first if need be."""
    import secrets

    from oar_celery.config import current_user

    path = config.flower_auth
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(f"{current_user()}:{secrets.token_urlsafe(16)}\n")
    return path.read_text().strip()


def check_broker(config: Settings) -> str | None:
    """None if the broker answers, else one line saying how to start one."""
    import redis

    try:
        redis.Redis.from_url(config.broker_url, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        return (
            f"the broker at {mask(config.broker_url)} does not answer ({error}); start Redis with "
            "'redis-server --daemonize yes --port 6379' or set OAR_BROKER_URL"
        )
    return None


@dataclass
class Process:
    """One started process of the local cluster."""

    name: str
    pid: int


def pid_file(config: Settings) -> Path:
    return Path(config.state_dir) / "cluster.json"


def start(name: str, argv: list[str], *, kind: str, extra_env: dict[str, str] | None = None,
          log_dir: Path) -> Process:
    """Start one process in its own session, its output in its log file."""
    env = {**os.environ, "OAR_PROCESS_KIND": kind, **(extra_env or {})}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"oar-{kind}.out", "ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, process.pid)


def enable_auth(state_dir: Path) -> None:
    """Make this local cluster prove its users: a key, authd's socket, both named in ``oar.conf``.

    The socket is ``OAR_AUTH_SOCKET`` if set (somewhere every user can reach),
    else in the state directory (only its owner then).

    The settings go into ``<state dir>/oar.conf`` so that the commands run from
    any shell with the same state directory find authd without more setup.
    """
    from oar_celery.config import read_conf_file, settings
    from oar_celery.protocol.auth import create_key

    key = state_dir / "auth.key"
    if not key.exists():
        create_key(key)
    values = {
        "OAR_AUTH_KEY_FILE": str(key),
        "OAR_AUTH_SOCKET": settings().auth_socket or str(state_dir / "authd.sock"),
    }
    conf = state_dir / "oar.conf"
    present = read_conf_file(conf) if conf.exists() else {}
    with conf.open("a") as out:
        for name, value in values.items():
            if name not in present:
                out.write(f'{name}="{value}"\n')
    os.environ.update(values)
    settings.cache_clear()


def authd_argv() -> list[str]:
    return [sys.executable, "-m", "oar_celery.cli.admin", "authd"]


def _wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not Path(path).exists():
        time.sleep(0.05)


def start_cluster(config: Settings, hosts: list[str]) -> list[Process]:
    """Start authd (if users prove who they are), the head worker, beat and the node workers."""
    from oar_celery.node.worker import node_worker_argv, node_worker_env

    logs = config.logs
    processes = []
    if config.auth_key_file and config.auth_socket:
        processes.append(start("authd", authd_argv(), kind="authd", log_dir=logs))
        _wait_for_socket(config.auth_socket)
    processes += [
        start("head", head_worker_argv(config), kind="head", log_dir=logs),
        start("beat", beat_argv(config), kind="beat", log_dir=logs),
    ]
    for host in hosts:
        processes.append(
            start(host, node_worker_argv(host, config), kind=f"node-{host}", extra_env=node_worker_env(host),
                  log_dir=logs)
        )
    pid_file(config).write_text(json.dumps([p.__dict__ for p in processes], indent=1))
    return processes


def start_flower(config: Settings, port: int) -> Process:
    """Start Flower, once the workers answer: it asks them for their queues when it starts."""
    process = start("flower", flower_argv(config, port), kind="flower", extra_env=flower_env(config),
                    log_dir=config.logs)
    entries = json.loads(pid_file(config).read_text())
    pid_file(config).write_text(json.dumps([*entries, process.__dict__], indent=1))
    return process


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def stop_processes(processes: list[Process], *, grace: float = 10.0) -> None:
    """SIGTERM every process group (a warm shutdown), then SIGKILL what is left."""
    for process in processes:
        _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p.pid) for p in processes):
        _reap()
        time.sleep(0.1)
    for process in processes:
        if alive(process.pid):
            _signal_group(process.pid, signal.SIGKILL)
    _reap()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def stop_cluster(config: Settings) -> list[Process]:
    path = pid_file(config)
    if not path.exists():
        return []
    processes = [Process(**entry) for entry in json.loads(path.read_text())]
    stop_processes(processes)
    path.unlink(missing_ok=True)
    return processes


def wait_for_workers(config: Settings, hosts: list[str], *, timeout: float = 60.0) -> list[str]:
    """Wait until the head and every node worker answer a ping; the names that never did."""
    from oar_celery.celery_app import app

    wanted = {"head", *hosts}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        seen = set()
        for reply in replies:
            for name in reply:
                prefix, _, rest = name.partition("@")
                seen.add("head" if prefix == "head" else rest)
        if wanted <= seen:
            return []
        time.sleep(0.3)
    return sorted(wanted - seen)
