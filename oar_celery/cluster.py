"""Starting the cluster's processes: each alone (a real cluster) or all on one machine (``up``).

``oar-celery up`` runs exactly the processes an admin starts by hand on a
real cluster, with the same command lines: the head worker, beat, one worker
per emulated compute node, and Flower. Their process ids are kept in
``<state dir>/cluster.json`` so that ``oar-celery down`` stops them.

Jobs outlive a node worker (it adopts them when it starts again), so
stopping the processes would leave the jobs running while the database says
``Running``. ``down`` first ends them as ``oardel`` does, through the head,
and waits for their end to be recorded; what the head could not end (it was
down, or a job would not die) is killed through the node's job directories
and recorded ``Error`` in the database directly, once every process is stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
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
#: Celery's worker and beat commands without the rest of its command line (:mod:`oar_celery.celery_main`).
CELERY_MAIN = [sys.executable, "-m", "oar_celery.celery_main"]


def head_worker_argv(config: Settings) -> list[str]:
    """The head worker: consumes ``oar.head``; the only process that writes the database."""
    return [
        *CELERY_MAIN, "worker", "-Q", HEAD_QUEUE, "-n", f"head@{socket.gethostname()}",
        "--pool", "prefork", "--concurrency", str(config.head_concurrency),
        "--prefetch-multiplier", "1", "-O", "fair", "-I", ",".join(HEAD_TASK_MODULES),
        "--loglevel", config.log_level, "--without-gossip", "--without-mingle",
    ]


def beat_argv(config: Settings) -> list[str]:
    state = Path(config.state_dir)
    return [
        *CELERY_MAIN, "beat", "--schedule", str(state / "celerybeat-schedule"), "--loglevel", config.log_level,
    ]


def flower_argv(config: Settings, port: int | None = None) -> list[str]:
    return [
        *CELERY, "flower", f"--address={config.flower_address}",
        f"--port={config.flower_port if port is None else port}",
        f"--db={Path(config.state_dir) / 'flower.db'}", "--persistent=False",
    ]


def flower_env(config: Settings) -> dict[str, str]:
    """Flower asks for a login on every page and API call, unless told not to (``OAR_FLOWER_OPEN=yes``).

    The login is ``FLOWER_BASIC_AUTH``, or Flower's OAuth when both
    ``FLOWER_AUTH`` and ``FLOWER_AUTH_PROVIDER`` are set, else the auth file's
    (``OAR_FLOWER_AUTH_FILE``, default ``<state dir>/flower.auth``, mode 0600,
    ``user:password``, made with a random password the first time). Flower's
    own ``FLOWER_UNAUTHENTICATED_API``, which opens its API to anyone, is
    turned off unless Flower is explicitly open.
    """
    if config.flower_open:
        return {}
    closed = {"FLOWER_UNAUTHENTICATED_API": "false"}
    oauth = os.environ.get("FLOWER_AUTH") and os.environ.get("FLOWER_AUTH_PROVIDER")
    if os.environ.get("FLOWER_BASIC_AUTH") or oauth:
        return closed
    return {**closed, "FLOWER_BASIC_AUTH": flower_login(config)}


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


def enable_signing(config: Settings, hosts: list[str]) -> None:
    """Sign this local cluster's node messages: the keys of its head and nodes, made where missing.

    Signing costs a few tens of microseconds per message (BENCHMARKS.md), so a
    local cluster signs whether or not its users prove who they are
    (``up --auth``); ``OAR_SIGNING=off`` leaves it unsigned.
    """
    from oar_celery.protocol.signing import create_keys, signing_on

    if signing_on(config):
        create_keys(config.keys, hosts)


#: The local cluster's own broker (``up --auth``): its ACL file, and each role's URL, mode 0600.
BROKER_DIR = "broker"


def broker_dir(config: Settings) -> Path:
    return Path(config.state_dir) / BROKER_DIR


def url_file(config: Settings, role: str) -> Path:
    """The file of one broker user's URL (``oar-head``, ``oar-user``, ``oar-node-<host>``)."""
    return broker_dir(config) / f"{role}.url"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner reads, never readable by others even for an instant."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def redis_argv(directory: Path, port: int) -> list[str]:
    """A Redis of the cluster's own: its ACL file, no persistence, on the loopback only."""
    return [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--aclfile", str(directory / "users.acl"), "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--logfile", "",
    ]


def start_own_broker(config: Settings, hosts: list[str]) -> Process:
    """``up --auth``: a Redis of its own with one ACL user per role; this process becomes the head's client.

    The machine's shared Redis is never touched: its ACL would apply to
    everybody's databases. Each role's URL, with its password, is written to a
    file of mode 0600 (``<state dir>/broker/<user>.url``), named to each process
    by ``OAR_BROKER_URL_FILE``; ``oar.conf`` names the users' URL, which needs no
    password (the anonymous submit-only role).
    """
    from oar_celery.protocol import broker_acl

    directory = broker_dir(config)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    passwords = broker_acl.new_passwords(hosts)
    write_private(directory / "users.acl", broker_acl.acl_file(hosts, passwords, db=0))
    port = _free_port()
    base = f"redis://127.0.0.1:{port}/0"
    for user, password in passwords.items():
        write_private(url_file(config, user), broker_acl.url_for(base, user, password) + "\n")
    process = start("redis", redis_argv(directory, port), kind="redis", log_dir=config.logs)
    _use_broker(config, base)
    try:
        _wait_for_broker()
    except Exception:
        stop_processes([process])
        raise
    return process


def _use_broker(config: Settings, users_url: str) -> None:
    """Name the users' URL in ``oar.conf``; this process and those it starts take the head's file."""
    set_conf_values(Path(config.state_dir), {"OAR_BROKER_URL": users_url})
    become_head_client(config)


def become_head_client(config: Settings) -> bool:
    """This process (and those it starts) takes the head's broker user, if its URL file is there to read.

    ``up`` does, and the admin's ``status`` and ``doctor`` on a local cluster
    with its own broker, where the users' URL would not let them look.
    """
    from oar_celery.celery_app import app, configure
    from oar_celery.config import settings

    path = url_file(config, "oar-head")
    if not os.access(path, os.R_OK):
        return False
    for name in ("OAR_BROKER_URL", "OAR_RESULT_BACKEND", "OAR_RESULT_BACKEND_FILE"):
        os.environ.pop(name, None)
    os.environ["OAR_BROKER_URL_FILE"] = str(path)
    settings.cache_clear()
    configure(app, settings())
    return True


def _wait_for_broker(timeout: float = 10.0) -> None:
    import redis

    from oar_celery.config import settings

    client = redis.Redis.from_url(settings().broker_url, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def set_conf_values(state_dir: Path, values: dict[str, str]) -> None:
    """Set these ``NAME="value"`` lines of ``<state dir>/oar.conf``, replacing the same names' lines."""
    conf = state_dir / "oar.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    kept = [line for line in lines if line.partition("=")[0].strip() not in values]
    conf.write_text("\n".join([*kept, *(f'{name}="{value}"' for name, value in values.items())]) + "\n")


def authd_argv() -> list[str]:
    return [sys.executable, "-m", "oar_celery.cli.admin", "authd"]


def api_argv(port: int | None = None) -> list[str]:
    """The REST API and web views (``oar-celery api``)."""
    return [sys.executable, "-m", "oar_celery.api", *(["--port", str(port)] if port else [])]


def enable_api_tokens(state_dir: Path) -> None:
    """Give a local cluster's API a token key (``oar-celery api token USER``), named in ``oar.conf``."""
    from oar_celery.config import read_conf_file, settings
    from oar_celery.protocol.auth import create_key

    if settings().api_secret_key:
        return
    key = state_dir / "api.key"
    if not key.exists():
        create_key(key)
    conf = state_dir / "oar.conf"
    present = read_conf_file(conf) if conf.exists() else {}
    if "OAR_API_SECRET_KEY_FILE" not in present:
        with conf.open("a") as out:
            out.write(f'OAR_API_SECRET_KEY_FILE="{key}"\n')
    os.environ["OAR_API_SECRET_KEY_FILE"] = str(key)
    settings.cache_clear()


def _wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not Path(path).exists():
        time.sleep(0.05)


def _cgroup_of_this_cluster(config: Settings) -> dict[str, str]:
    """Emulated nodes share one machine's cgroups: each local cluster keeps its jobs' under a name of its own.

    Two local clusters both have a ``node1`` and a job 1; under OAR's one
    ``oar`` directory the second would take the first's cgroup.
    """
    if os.environ.get("OAR_CGROUP_NAME"):
        return {}
    digest = hashlib.sha1(str(config.state_dir).encode()).hexdigest()[:8]
    return {"OAR_CGROUP_NAME": f"{config.cgroup_name}-{digest}"}


def _own_url(config: Settings, user: str, broker: Process | None) -> dict[str, str]:
    """The variable that gives a process its own broker user, on the cluster's own broker."""
    return {"OAR_BROKER_URL_FILE": str(url_file(config, user))} if broker else {}


def start_cluster(config: Settings, hosts: list[str], *, api_port: int | None = None,
                  broker: Process | None = None) -> list[Process]:
    """Start authd (if users prove who they are), the head worker, beat, the node workers and the API.

    ``broker`` is the cluster's own Redis (``up --auth``), listed first so that it is stopped last.
    """
    from oar_celery.node.worker import node_worker_argv, node_worker_env
    from oar_celery.protocol.broker_acl import node_user
    from oar_celery.protocol.tls import ensure_cluster_keys

    logs = config.logs
    ensure_cluster_keys(config.keys, hosts)  # the job-shell service's CA, node certificates and job-key secret
    processes = [broker] if broker else []
    if config.auth_key_file and config.auth_socket:
        processes.append(start("authd", authd_argv(), kind="authd", log_dir=logs,
                               extra_env=_own_url(config, "oar-user", broker)))
        _wait_for_socket(config.auth_socket)
    processes += [
        start("head", head_worker_argv(config), kind="head", log_dir=logs),
        start("beat", beat_argv(config), kind="beat", log_dir=logs),
    ]
    confinement = _cgroup_of_this_cluster(config)
    for host in hosts:
        processes.append(
            start(host, node_worker_argv(host, config), kind=f"node-{host}",
                  extra_env={**node_worker_env(host), **confinement, **_own_url(config, node_user(host), broker)},
                  log_dir=logs)
        )
    port = config.api_port if api_port is None else api_port
    if port:
        processes.append(start("api", api_argv(port), kind="api", log_dir=logs))
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


DOWN_MESSAGE = "killed: the local cluster was stopped (oar-celery down)"


def stop_cluster(config: Settings) -> list[Process]:
    """End the cluster's jobs, then stop its processes."""
    path = pid_file(config)
    if not path.exists():
        return []
    processes = [Process(**entry) for entry in json.loads(path.read_text())]
    head = next((p for p in processes if p.name == "head"), None)
    if head is not None and alive(head.pid):
        end_jobs(config)
    broker = [p for p in processes if p.name == "redis"]
    stop_processes([p for p in processes if p.name != "redis"])
    kill_node_jobs(config)  # also what a node never reported the end of, though the head ended it
    left = unfinished_jobs(config)
    if left:
        record_killed(config, left)
    stop_processes(broker)  # the cluster's own broker, last: the others leave it in order
    path.unlink(missing_ok=True)
    return processes


def unfinished_jobs(config: Settings) -> list[int]:
    """Every job of the cluster not ``Terminated`` or ``Error`` (none if the database is unreachable)."""
    from sqlalchemy import select

    from oar_celery.db.models import CURRENT_STATES, Job
    from oar_celery.db.session import session_scope

    try:
        with session_scope() as session:
            return list(session.scalars(select(Job.job_id).where(Job.state.in_(CURRENT_STATES))))
    except Exception:  # noqa: BLE001 - no database: nothing recorded to keep consistent
        return []


def end_jobs(config: Settings, timeout: float | None = None) -> list[int]:
    """``oardel`` every unfinished job through the head; wait for their ends; the ids still unfinished."""
    from oar_celery.client import api

    ids = unfinished_jobs(config)
    if not ids:
        return []
    try:
        api.delete(ids)  # as the user who runs 'down': the starter of a local cluster, or root
    except Exception:  # noqa: BLE001 - the head does not answer: the fallback ends them
        return ids
    deadline = time.monotonic() + (config.kill_grace + 15.0 if timeout is None else timeout)
    while time.monotonic() < deadline:
        left = set(unfinished_jobs(config)) & set(ids)
        if not left:
            return []
        time.sleep(0.2)
    return sorted(set(unfinished_jobs(config)) & set(ids))


def kill_node_jobs(config: Settings) -> int:
    """Kill, through their job directories, the jobs still running on this machine's nodes; how many."""
    from oar_celery.node import jobcontrol, process
    from oar_celery.node.jobdir import all_jobs

    killed = 0
    root = Path(config.node_dir)
    for host in sorted(p.name for p in root.iterdir()) if root.is_dir() else []:
        for job in all_jobs(root, host):
            if job.status is not None:
                continue
            keeper = job.keeper
            pgid, start = (keeper[0], keeper[1]) if keeper else (0, None)
            mine = start is not None and process.start_time(pgid) == start  # the pid is still the keeper
            jobcontrol.clean_up(pgid if mine else None, jobcontrol.job_cgroup(job))
            killed += keeper is not None
    return killed


def record_killed(config: Settings, job_ids: list[int]) -> None:
    """Record jobs the head could not end as ``Error``, their resources freed (the head is stopped)."""
    from oar_celery.db.models import FINAL_STATES, JOB_STATES
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.transitions import finish

    unfinished = tuple(state for state in JOB_STATES if state not in FINAL_STATES)
    with session_scope() as session:
        finish(session, job_ids, "Error", expected=unfinished, message=DOWN_MESSAGE)


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
