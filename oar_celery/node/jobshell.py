"""The node's job-shell service: shells and commands inside running jobs, over TLS, without sshd.

``oarsub -I``, ``oarsub -C`` and ``oarsh`` connect here directly, as ``srun``
connects to ``slurmd``; only the set-up of a job ever crosses the broker. The
service runs in the node worker's process (a thread, started when the worker
is ready), listens on the node's address and publishes its port on the broker
(:func:`oar_celery.protocol.names.jobshell_key`).

A connection is believed only with the job's key (:func:`oar_celery.protocol.tls.job_secret`):
on the job's first node the job's directory says who owns it and whether it
still runs; on its other nodes the job's ticket, sealed with the key head and
nodes share, says which hosts and CPUs are the job's and until when. The shell
runs as the job's user, in its working directory, with its OAR environment and
in its cgroup on this node (a cgroup of the job made here for another node of
the job), which the forked child enters before it becomes the user and execs
the shell, so that nothing of the shell ever runs unconfined. Every refusal is one line to the
client and one in the node's log.

The first shell of an ``oarsub -I`` job is the job: its exit status is the
job's (the supervisor reads it from the ``session_exit`` file) and a client
that goes away kills the job, as OAR's Leon does for a lost interactive client.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pty
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from oar_celery.config import Settings
from oar_celery.node import confinement, jobcontrol
from oar_celery.node.cgroup import JobCgroup, node_hierarchy
from oar_celery.node.environment import Account, job_environment, lookup_account
from oar_celery.node.jobdir import JobDir
from oar_celery.protocol import jobshell as wire
from oar_celery.protocol import tls
from oar_celery.protocol.names import Key

logger = logging.getLogger(__name__)

#: The file of a job's directory holding the exit status of its ``oarsub -I`` shell.
SESSION_EXIT = "session_exit"
#: The job key file given to the job's own processes (``OAR_JOB_KEY_FILE``, for ``oarsh``).
JOB_KEY = "job_key"
#: Seconds a client has to finish its TLS handshake and hello.
SETUP_TIMEOUT = 10.0
#: Seconds between two looks at whether the session's job still runs.
JOB_CHECK = 0.5
#: Seconds a hung-up shell has before SIGKILL.
HANGUP_GRACE = 2.0

class Refusal(Exception):
    """A connection the service will not serve; the message is the client's one line."""


@dataclass
class Grant:
    """What an accepted connection may do: which job, as whom, where, confined how."""

    job_id: int
    user: str
    account: Account
    spec: dict[str, Any]
    cpus: list[int]
    cgroup: JobCgroup | None
    nodefile: Path
    job: JobDir | None  # the job's directory on its first node; None on another node of the job
    until: float = 0.0  # on another node: when the ticket says the job ends
    main: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------ the service


class JobShellService:
    """The TLS listener of one node; one thread per connection."""

    def __init__(self, config: Settings, host: str) -> None:
        self.config = config
        self.host = host
        self.key = tls.read_shared_key(config.keys)
        self.context = tls.server_context(config.keys, host)
        self.listener: socket.socket | None = None
        self.address = ("", 0)
        self.remote_lock = threading.Lock()
        self.remote_sessions: dict[int, int] = {}  # job id → sessions on this (non-first) node

    def bind(self) -> tuple[str, int]:
        address = self.config.jobshell_address or local_address(self.config.broker_url)
        listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, self.config.jobshell_port))
        listener.listen(64)
        self.listener = listener
        self.address = (address, listener.getsockname()[1])
        return self.address

    def publish(self) -> None:
        from oar_celery.protocol.bus import broker_redis

        address, port = self.address
        broker_redis().hset(Key.JOBSHELL_SERVICES, self.host, json.dumps({"address": address, "port": port}))
        key_cache(self.config).forget_nodes()

    def serve_forever(self) -> None:
        assert self.listener is not None
        while True:
            try:
                connection, peer = self.listener.accept()
            except OSError:
                logger.exception("job-shell service of %s: accept failed", self.host)
                time.sleep(0.5)
                continue
            threading.Thread(target=self._serve, args=(connection, peer), name="oar-jobshell", daemon=True).start()

    def _serve(self, raw: socket.socket, peer: Any) -> None:
        try:
            raw.settimeout(SETUP_TIMEOUT)
            sock = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as error:
            logger.warning("job-shell on %s: TLS handshake with %s failed: %s", self.host, peer, error)
            raw.close()
            return
        with sock:
            try:
                hello = wire.read_line(sock)
                grant = self.authorize(hello)
            except Refusal as refusal:
                logger.warning("job-shell on %s: refused %s: %s", self.host, peer, refusal)
                with contextlib.suppress(OSError):
                    wire.send_line(sock, {"error": str(refusal)})
                return
            except (OSError, ValueError, KeyError, TypeError) as error:
                logger.warning("job-shell on %s: bad set-up from %s: %s", self.host, peer, error)
                return
            if hello.get("probe"):  # another node of the job asks whether it still runs here
                with contextlib.suppress(OSError):
                    wire.send_line(sock, {"ok": True, "host": self.host})
                return
            logger.info("job-shell on %s: %s into job %s (%s) from %s", self.host, grant.user, grant.job_id,
                        "main shell" if grant.main else hello.get("command") or "shell", peer)
            sock.settimeout(None)
            try:
                Session(self, grant, sock, hello).run()
            except Refusal as refusal:  # the shell could not start: still one line, before any frame
                logger.warning("job-shell on %s: refused %s: %s", self.host, peer, refusal)
                with contextlib.suppress(OSError):
                    wire.send_line(sock, {"error": str(refusal)})
            except Exception:
                logger.exception("job-shell on %s: session of job %s failed", self.host, grant.job_id)
            finally:
                self._left(grant)

    # ------------------------------------------------------------------ authorisation

    def authorize(self, hello: Any) -> Grant:
        """Who may do what; Refusal with the client's one line."""
        if not isinstance(hello, dict):
            raise Refusal("bad request")
        try:
            job_id = int(hello["job_id"])
        except (KeyError, TypeError, ValueError):
            raise Refusal("bad request: no job id") from None
        job = JobDir.of(self.config.node_dir, self.host, job_id)
        spec = job.spec if job.exists() else None
        grant = self._first_node(job, spec, hello) if spec is not None else self._other_node(job_id, hello)
        command = hello.get("command")
        if command is not None and not isinstance(command, str):
            raise Refusal("bad request: the command must be text")
        return grant

    def _check_key(self, job_id: int, user: str, given: Any) -> None:
        if not tls.same(tls.job_secret(self.key, job_id, user), given):
            raise Refusal(f"wrong job key for job {job_id}")

    def _first_node(self, job: JobDir, spec: dict[str, Any], hello: dict[str, Any]) -> Grant:
        user = str(spec["user"])
        self._check_key(job.job_id, user, hello.get("key"))
        if job.status is not None or job.keeper is None:
            raise Refusal(f"job {job.job_id} is not running on {self.host}" if job.keeper is None
                          else f"job {job.job_id} has ended")
        main = bool(hello.get("main"))
        if main and (not spec.get("interactive") or job.read(SESSION_EXIT + ".claimed") is not None):
            raise Refusal(f"job {job.job_id} is not waiting for its interactive shell")
        if main:
            job.write(SESSION_EXIT + ".claimed", "1", durable=False)
        account = self._account(user)
        spec = {**spec, "directory": spec.get("directory") or account.home}
        return Grant(job.job_id, user, account, spec, confinement.job_cpus(spec, self.host),
                     jobcontrol.job_cgroup(job), job.nodefile, job, main=main,
                     extra_env={"OAR_JOB_KEY_FILE": str(job.path / JOB_KEY)})

    def _other_node(self, job_id: int, hello: dict[str, Any]) -> Grant:
        ticket, mac = hello.get("ticket"), hello.get("ticket_mac")
        if not isinstance(ticket, dict) or int(ticket.get("job_id") or 0) != job_id:
            raise Refusal(f"job {job_id} does not run on {self.host}")
        if not tls.same(tls.ticket_mac(self.key, ticket), mac):
            raise Refusal(f"the ticket of job {job_id} is forged")
        user = str(ticket.get("user"))
        self._check_key(job_id, user, hello.get("key"))
        if self.host not in (ticket.get("hosts") or []):
            raise Refusal(f"{self.host} is not a node of job {job_id}")
        if time.time() > float(ticket.get("until") or 0):
            raise Refusal(f"job {job_id} has ended")
        if hello.get("main"):
            raise Refusal(f"{self.host} is not the first node of job {job_id}")
        if not self._still_running(ticket, str(hello.get("key"))):
            raise Refusal(f"job {job_id} has ended")
        account = self._account(user)
        spec = {**ticket, "directory": ticket.get("directory") or account.home}
        place = self.config.node_dir / self.host / "jobshell" / str(job_id)
        place.mkdir(parents=True, exist_ok=True)
        nodefile = place / "nodefile"
        nodefile.write_text(str(ticket.get("nodefile") or ""))
        cpus = confinement.job_cpus(spec, self.host)
        cgroup = self._remote_cgroup(job_id, cpus, spec)
        return Grant(job_id, user, account, spec, cpus, cgroup, nodefile, None, until=float(ticket["until"]))

    def _still_running(self, ticket: dict[str, Any], key: str) -> bool:
        """Ask the job's first node, which alone knows whether the job still runs (it may end before its walltime)."""
        from oar_celery.protocol.bus import broker_redis

        first = str((ticket.get("hosts") or [""])[0])
        try:
            published = broker_redis().hget(Key.JOBSHELL_SERVICES, first)
            address, port = services({first: published})[first] if published else ("", 0)
            with socket.create_connection((address, int(port)), timeout=SETUP_TIMEOUT) as raw:
                context = tls.client_context(self.config.keys)
                with context.wrap_socket(raw, server_hostname=first) as sock:
                    probe: wire.Hello = {"job_id": int(ticket["job_id"]), "key": key, "command": None,
                                         "tty": False, "probe": True}
                    wire.send_line(sock, probe)
                    answer = wire.read_line(sock)
        except (OSError, ValueError, ConnectionError) as error:
            logger.warning("job-shell on %s: cannot ask %s about job %s: %s", self.host, first, ticket["job_id"],
                           error)
            return False
        return isinstance(answer, dict) and bool(answer.get("ok"))

    def _remote_cgroup(self, job_id: int, cpus: list[int], spec: dict[str, Any]) -> JobCgroup | None:
        """The job's cgroup on this node, made by its first session here (and removed by its last)."""
        hierarchy = node_hierarchy(self.config.cgroup_root, self.config.cgroup_name,
                                   favordynmods=self.config.cgroup_favordynmods)
        with self.remote_lock:
            self.remote_sessions[job_id] = self.remote_sessions.get(job_id, 0) + 1
            if hierarchy is None:
                return None
            return hierarchy.create(self.host, job_id, cpus or sorted(os.sched_getaffinity(0)),
                                    confinement.job_memory(spec, self.host))

    def _left(self, grant: Grant) -> None:
        if grant.job is not None:
            return
        with self.remote_lock:
            left = self.remote_sessions.get(grant.job_id, 1) - 1
            self.remote_sessions[grant.job_id] = left
            if left <= 0:
                self.remote_sessions.pop(grant.job_id, None)
                if grant.cgroup is not None:
                    grant.cgroup.remove()
                shutil.rmtree(grant.nodefile.parent, ignore_errors=True)

    def _account(self, user: str) -> Account:
        account = lookup_account(user)
        if account is None:
            raise Refusal(f"user {user} is unknown on {self.host}")
        if os.geteuid() != 0 and account.uid != os.geteuid():
            raise Refusal(f"{self.host} runs the jobs of one user only")
        if account.uid == 0 and not self.config.allow_root_jobs:
            raise Refusal("shells of root are not allowed")
        return account


def local_address(broker_url: str) -> str:
    """The address this machine reaches the broker from: where its peers can reach it too."""
    parsed = urlparse(broker_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


# ------------------------------------------------------------------------- a session


class Session:
    """One shell or command and its client: relay bytes until the shell, the job or the client ends."""

    def __init__(self, service: JobShellService, grant: Grant, sock: ssl.SSLSocket, hello: dict[str, Any]) -> None:
        self.service = service
        self.grant = grant
        self.sock = sock
        self.hello = hello
        self.tty = bool(hello.get("tty"))
        self.process: subprocess.Popen[bytes] | None = None
        self.master: int | None = None
        self.outputs: dict[int, bytes] = {}  # fd → the frame type its bytes go in
        self.stdin: int | None = None

    def run(self) -> None:
        self._spawn()
        wire.send_line(self.sock, {"ok": True, "host": self.service.host})
        reason = self._relay()
        code = self._wait_code()
        if reason == "exited" and self._ended_with_the_job(code):
            reason = self._end_reason()
        if self.grant.main and reason in ("exited",):
            assert self.grant.job is not None
            self.grant.job.write(SESSION_EXIT, f"{code}\n", durable=False)
            self._end_job(kill=False)
        elif self.grant.main and reason == "lost":
            logger.warning("job %s: its interactive client is gone: the job is killed", self.grant.job_id)
            self._end_job(kill=True)
        if reason != "lost":
            with contextlib.suppress(OSError):
                self._drain_outputs()
                wire.send_json_frame(self.sock, wire.EXIT, {"code": code, "reason": reason})
        if self.master is not None:
            os.close(self.master)

    # ---------------------------------------------------------------- starting

    def _environment(self) -> dict[str, str]:
        grant = self.grant
        env = job_environment({**grant.spec, "job_id": grant.job_id}, grant.account, grant.nodefile)
        env.update(grant.extra_env)
        env["OAR_CPUSET"] = confinement.cpuset_name(grant.cgroup)
        if self.tty:
            env["TERM"] = str(self.hello.get("term") or "xterm")
        return env

    def _spawn(self) -> None:
        grant = self.grant
        command = self.hello.get("command")
        shell = grant.account.shell or "/bin/sh"
        argv = [shell] if command is None else [shell, "-c", command]
        streams: dict[str, Any]
        if self.tty:
            self.master, slave = pty.openpty()
            _set_window(self.master, self.hello)
            streams = {"stdin": slave, "stdout": slave, "stderr": slave}
            self.outputs = {self.master: wire.DATA}
            self.stdin = self.master
        else:
            streams = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        try:
            self.process = subprocess.Popen(
                argv, env=self._environment(), cwd="/", preexec_fn=self._enter_job, **streams,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise Refusal(f"could not start the shell in job {grant.job_id}: {error}") from error
        finally:
            if self.tty:
                os.close(streams["stdin"])
        assert self.process is not None
        if not self.tty:
            assert self.process.stdin and self.process.stdout and self.process.stderr
            self.stdin = self.process.stdin.fileno()
            self.outputs = {self.process.stdout.fileno(): wire.DATA, self.process.stderr.fileno(): wire.STDERR}

    def _enter_job(self) -> None:
        """In the forked child, before the shell runs: confined first, then the terminal, the user, the directory.

        Only system calls here (the worker has other threads): a session of
        its own, the job's cgroup (or CPUs), the terminal as its controlling
        one, the user's groups and ids, then the working directory as the user.
        """
        grant = self.grant
        os.setsid()
        if grant.cgroup is not None:
            grant.cgroup.add(os.getpid())
        elif grant.cpus:
            os.sched_setaffinity(0, grant.cpus)
        if self.tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        account = grant.account
        if os.geteuid() == 0 and account.uid != 0:
            os.setgroups(list(account.groups))
            os.setgid(account.gid)
            os.setuid(account.uid)
        os.chdir(str(grant.spec["directory"]))

    # ---------------------------------------------------------------- relaying

    def _relay(self) -> str:
        """Bytes both ways until the end: ``exited``, ``lost`` (the client), or the job's end."""
        assert self.process is not None
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        for fd in self.outputs:
            poller.register(fd, select.POLLIN)
        open_outputs = set(self.outputs)
        next_check = time.monotonic() + JOB_CHECK
        while True:
            if self.sock.pending():
                events = [(self.sock.fileno(), select.POLLIN)]
            else:
                events = poller.poll(max(0.0, next_check - time.monotonic()) * 1000)
            for fd, _ in events:
                if fd == self.sock.fileno():
                    if not self._from_client():
                        self._hang_up()
                        return "lost"
                elif not self._to_client(fd):
                    poller.unregister(fd)
                    open_outputs.discard(fd)
            if not open_outputs:  # every holder of its terminal or pipes is gone: the shell is ending
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(JOB_CHECK)
                if self.process.poll() is not None:
                    return "exited"
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + JOB_CHECK
                if self.process.poll() is not None and self.tty:
                    return "exited"  # a background process may hold the terminal open
                if self._job_ended():
                    self._hang_up()
                    return self._end_reason()

    def _from_client(self) -> bool:
        try:
            kind, payload = wire.read_frame(self.sock)
        except (OSError, ValueError, ConnectionError):
            return False
        if kind == wire.DATA and self.stdin is not None:
            with contextlib.suppress(OSError):
                os.write(self.stdin, payload)
        elif kind == wire.WINDOW and self.master is not None:
            with contextlib.suppress(ValueError, OSError):
                _set_window(self.master, json.loads(payload))
        elif kind == wire.EOF and not self.tty and self.process is not None and self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            self.stdin = None
        return True

    def _to_client(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's last holder has closed it
            data = b""
        if not data:
            return False
        try:
            wire.send_frame(self.sock, self.outputs[fd], data)
        except OSError:
            return False
        return True

    def _drain_outputs(self) -> None:
        for fd, kind in self.outputs.items():
            while select.select([fd], [], [], 0.05)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                wire.send_frame(self.sock, kind, data)

    # ---------------------------------------------------------------- ending

    def _hang_up(self) -> None:
        """As a terminal's hang-up: SIGHUP to the session, SIGKILL to what is left after a grace."""
        assert self.process is not None
        for signum in (signal.SIGHUP, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(HANGUP_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def _wait_code(self) -> int:
        assert self.process is not None
        try:
            status = self.process.wait(HANGUP_GRACE)
        except subprocess.TimeoutExpired:
            self._hang_up()
            status = self.process.wait()
        return 128 - status if status < 0 else status

    def _ended_with_the_job(self, code: int) -> bool:
        """Whether a shell that exited was ended by its job's end (killed by a signal as the job ended)."""
        deadline = time.monotonic() + (HANGUP_GRACE if code > 128 else 0.0)
        while not self._job_ended():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _job_ended(self) -> bool:
        job = self.grant.job
        if job is None:
            return time.time() > self.grant.until
        return job.status is not None or (job.kill_request is not None) or _holder_gone(job)

    def _end_reason(self) -> str:
        job = self.grant.job
        started = job.keeper[2] if job is not None and job.keeper else None
        walltime = float(self.grant.spec.get("walltime") or 0)
        if job is not None and job.walltime:
            walltime = float(job.walltime)
        if job is None or (started is not None and walltime and time.time() >= started + walltime - 1):
            return "walltime"
        return "killed"

    def _end_job(self, *, kill: bool) -> None:
        """The main shell's end ends the job: its holder is stopped (a lost client: the job is killed)."""
        job = self.grant.job
        assert job is not None
        pgid = job.pid
        if kill:
            job.request_kill(self.service.config.kill_grace, signalled=pgid is not None)
        if pgid is not None:
            jobcontrol.terminate(pgid, self.grant.cgroup if kill else None)


def _holder_gone(job: JobDir) -> bool:
    """Whether the job's keeper has exited (an unreaped one too: its supervisor is finishing the job)."""
    from oar_celery.node.process import start_time

    keeper = job.keeper
    return keeper is not None and start_time(keeper[0]) is None


def _set_window(fd: int, size: Any) -> None:
    rows, cols = int(size.get("rows") or 24), int(size.get("cols") or 80)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


# ----------------------------------------------------------------------- job keys


def job_ticket(spec: dict[str, Any], started_at: float) -> dict[str, Any]:
    """What another node of the job needs to let the job's user in: sealed, it needs nothing else."""
    return {
        "job_id": int(spec["job_id"]),
        "user": str(spec["user"]),
        "hosts": list(spec.get("hosts") or []),
        "cpusets": dict(spec.get("cpusets") or {}),
        "mem": dict(spec.get("mem") or {}),
        "directory": str(spec.get("directory") or ""),
        "walltime": int(spec.get("walltime") or 0),
        "until": float(started_at) + float(spec.get("walltime") or 0),
        "nodefile": str(spec.get("nodefile") or ""),
        "name": str(spec.get("name") or ""),
        "project": spec.get("project"),
    }


def published_nodes() -> dict[str, list[Any]]:
    """Every node's job-shell service, as it published it on the broker (``oarsh`` is refused by the others)."""
    from oar_celery.protocol.bus import broker_redis

    return services(broker_redis().hgetall(Key.JOBSHELL_SERVICES))


def services(published: dict[Any, Any]) -> dict[str, list[Any]]:
    nodes: dict[str, list[Any]] = {}
    for host, raw in published.items():
        found = json.loads(raw)
        nodes[host.decode() if isinstance(host, bytes) else str(host)] = [found["address"], int(found["port"])]
    return nodes


Material = tuple[bytes, str, dict[str, list[Any]]]


class KeyMaterial:
    """What the job keys of one launch message share: the cluster's shared key, its CA, the published nodes.

    Read at the first job's need, then reused by the message's other jobs:
    three file reads and a broker round trip per job were a large part of a
    short job's launch. A failed read is not kept, so the next job tries again.
    ``loader`` reads them (default: from disk and the broker, every time);
    :class:`KeyCache` gives one that keeps them across messages.
    """

    def __init__(self, config: Settings, loader: Callable[[], Material] | None = None) -> None:
        self.config = config
        self._load = loader or self._read
        self._loaded: Material | None = None

    def get(self) -> Material:
        """(shared key, CA certificate, published nodes); raises OSError or ValueError as the reads do."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _read(self) -> Material:
        return tls.read_shared_key(self.config.keys), tls.ca_pem(self.config.keys), published_nodes()


#: Seconds the published nodes are kept while they name every host of the jobs launched.
NODES_TTL = 2.0

#: What tells that a file changed: a rotated key is written in place (size and times change) or
#: replaced (the inode changes).
FileStamp = tuple[int, int, int, int, int]


def _stamp(path: Path) -> FileStamp:
    found = os.stat(path)
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


class KeyCache:
    """The key material of every launch message of this process, read again only when it may have changed.

    Each launch message read the shared key and the CA from disk and every
    node's published service from the broker (a round trip): most messages
    carry one job. Here the two files are read again when their ``stat``
    says they changed (a rotated key, a new CA), and the published nodes when
    a host of the jobs is missing from them (a new node), when this node
    publishes its own service again, or after :data:`NODES_TTL` seconds (a
    node restarted on another port: its jobs' keys then name it within that
    time). A file that cannot be stat'ed or read fails the job's key as
    before, and nothing is kept.
    """

    def __init__(self, config: Settings) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._files: tuple[FileStamp, FileStamp, bytes, str] | None = None
        self._nodes: dict[str, list[Any]] | None = None
        self._nodes_at = 0.0

    def material(self, hosts: Iterable[str] = ()) -> KeyMaterial:
        """The material of one launch message whose jobs run on ``hosts``; read at its first job's need."""
        wanted = set(hosts)
        return KeyMaterial(self.config, lambda: self.get(wanted))

    def get(self, hosts: Iterable[str] = ()) -> Material:
        """(shared key, CA certificate, published nodes), each as fresh as the class says."""
        with self._lock:
            key, ca = self._key_files()
            return key, ca, self._published(set(hosts))

    def forget_nodes(self) -> None:
        """This node (re)published its service: the next key reads every node's again."""
        with self._lock:
            self._nodes = None

    def _key_files(self) -> tuple[bytes, str]:
        directory = tls.tls_dir(self.config.keys)
        stamps = _stamp(directory / tls.SHARED_KEY), _stamp(directory / tls.CA_CERT)
        if self._files is None or self._files[:2] != stamps:
            key, ca = tls.read_shared_key(self.config.keys), tls.ca_pem(self.config.keys)
            # stamped before the reads: a change during them is seen at the next message
            self._files = (*stamps, key, ca)
        return self._files[2], self._files[3]

    def _published(self, hosts: set[str]) -> dict[str, list[Any]]:
        now = time.monotonic()
        if self._nodes is None or now - self._nodes_at >= NODES_TTL or not hosts <= self._nodes.keys():
            self._nodes, self._nodes_at = published_nodes(), now
        return self._nodes


_key_cache: KeyCache | None = None


def key_cache(config: Settings) -> KeyCache:
    """This process's cache of key material, for ``config`` (a new one for other settings: a test's)."""
    global _key_cache
    if _key_cache is None or _key_cache.config is not config:
        _key_cache = KeyCache(config)
    return _key_cache


def write_job_key(
    config: Settings,
    job: JobDir,
    spec: dict[str, Any],
    account: Account,
    started_at: float,
    material: KeyMaterial | None = None,
) -> Path:
    """The job's key file, for its own processes (``OAR_JOB_KEY_FILE``, read by ``oarsh``), the user's only."""
    key, ca, nodes = (material or KeyMaterial(config)).get()
    ticket = job_ticket(spec, started_at)
    hosts = list(spec.get("hosts") or [])
    content: wire.JobKey = {
        "job_id": job.job_id, "key": tls.job_secret(key, job.job_id, str(spec["user"])),
        "first_host": hosts[0] if hosts else "", "nodes": nodes,
        "ticket": ticket, "ticket_mac": tls.ticket_mac(key, ticket), "ca": ca,
    }
    path = job.path / JOB_KEY
    job.write_new(JOB_KEY, orjson.dumps(content, option=orjson.OPT_APPEND_NEWLINE).decode(), mode=0o600)
    if os.geteuid() == 0:
        os.chown(path, account.uid, account.gid)
    return path


# ------------------------------------------------------------------------- start-up


def end_lost_shells(config: Settings, host: str) -> list[int]:
    """The ``oarsub -I`` jobs whose shell a previous worker served: their client is lost with it, they are killed.

    The shell was the worker's child and went with it; the job's holder
    lives on under its keeper, and would hold the resources to the walltime.
    """
    from oar_celery.node.jobdir import all_jobs

    killed = []
    for job in all_jobs(config.node_dir, host):
        spec = job.spec or {}
        if not spec.get("client_timeout") or job.status is not None or job.kill_request is not None:
            continue
        if job.read(SESSION_EXIT + ".claimed") is None or job.read(SESSION_EXIT) is not None:
            continue
        logger.warning("job %s: its interactive shell went with the previous worker: the job is killed", job.job_id)
        job.request_kill(config.kill_grace, signalled=False)
        killed.append(job.job_id)
    return killed

_started: dict[str, JobShellService] = {}


def start_service(config: Settings, host: str) -> JobShellService | None:
    """Start this node's job-shell service in a thread; None (and a log line) if it has no keys."""
    if host in _started:
        return _started[host]
    if not tls.ensure_node_cert(config.keys, host):
        logger.warning("no job-shell service on %s: no TLS certificate in %s (run the cluster's key set-up)",
                       host, tls.tls_dir(config.keys))
        return None
    try:
        service = JobShellService(config, host)
        address = service.bind()
        service.publish()
    except (OSError, ssl.SSLError) as error:
        logger.error("no job-shell service on %s: %s", host, error)
        return None
    threading.Thread(target=service.serve_forever, name="oar-jobshell-listener", daemon=True).start()
    _started[host] = service
    end_lost_shells(config, host)
    logger.info("job-shell service of %s on %s:%s", host, *address)
    return service
