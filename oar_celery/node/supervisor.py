"""A job's life on its node: prologue, the job, epilogue, then the end report.

A running job is not a running Celery task: the Redis transport would deliver
an unacknowledged task again after its visibility timeout. So the launch task
claims the job directory, confines the job (``confinement.py``) and starts its
keeper (``process.py``), and one watcher thread per worker process
(:class:`Watcher`) sees every keeper end through its pidfd, and acts on kill
requests written by other tasks and on the walltime backstop every
:data:`POLL` seconds. A pidfd opens on any process, so the jobs a restarted
worker adopts (``recovery.py``), whose keepers are not its children, are
watched the same way; their exit status comes from the keeper's file. A thread per job cost a short job more
in hand-offs of the interpreter lock than its launch itself. Work that may
take long, the prologue and the epilogue, runs in a thread of its own.

The checkpoint signal is Sarko's alone (a ``CHECKPOINT`` event makes it happen
once); the backstop only fires ``grace`` seconds after the walltime, when the
head should already have killed the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery

from oar_celery.accounts import cached_account
from oar_celery.config import Settings
from oar_celery.node import confinement, jobcontrol, process, reports
from oar_celery.node.cgroup import JobCgroup
from oar_celery.node.environment import Account, job_environment, lookup_account
from oar_celery.node.jobdir import JobDir

if TYPE_CHECKING:
    from oar_celery.node.jobshell import KeyMaterial

logger = logging.getLogger(__name__)

#: Seconds between two checks of a running job's kill request and walltime; its end is seen at once.
POLL = 0.1
HOOK_TIMEOUT = 60.0


class JobRefused(Exception):
    """The job cannot start on this node; ``reason`` is the report's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Supervisor:
    """Runs and watches one job until its end is reported."""

    def __init__(
        self,
        app: Celery,
        config: Settings,
        host: str,
        job: JobDir,
        spec: dict[str, Any],
        keys: KeyMaterial | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.host = host
        self.job = job
        self.spec = spec
        self.grace = float(spec.get("kill_grace") or config.kill_grace)
        self.times: dict[str, float | None] = {"launched_at": time.time(), "started_at": None}
        self.pgid: int | None = None  # the keeper's pid, the job's process group
        self.keeper_start: int | None = None
        self.process: subprocess.Popen[bytes] | None = None  # the keeper, when it is our child
        self.cgroup: JobCgroup | None = None
        self.env: dict[str, str] = {}
        self.started = 0.0  # time.monotonic() when the job's process started
        self.reason = "exited"
        self.hard_kill_at: float | None = None
        self.changes_checked = 0.0
        self.hard_killed = False
        self.keys = keys  # shared with the other jobs of the launch message

    @classmethod
    def adopt(cls, app: Celery, config: Settings, host: str, job: JobDir) -> Supervisor | None:
        """Watch a job a previous worker started, from what its directory says; None if it never started."""
        keeper, spec = job.keeper, job.spec
        if keeper is None or spec is None:
            return None
        supervisor = cls(app, config, host, job, spec)
        supervisor.pgid, supervisor.keeper_start, started_at = keeper
        supervisor.cgroup = jobcontrol.job_cgroup(job)
        supervisor.started = time.monotonic() - max(0.0, time.time() - started_at)
        supervisor.times["started_at"] = started_at
        supervisor.times["launched_at"] = started_at
        account = lookup_account(str(spec.get("user")))
        if account is not None:
            supervisor.env = job_environment(spec, account, job.nodefile)
        return supervisor

    def start(self) -> None:
        """Start the job now, or in a thread of its own when a prologue must run first."""
        self._run_step(self._launch, in_thread=bool(self.config.prologue))

    def _run_step(self, step: Callable[[], None], *, in_thread: bool) -> None:
        if in_thread:
            name = f"oar-job-{self.job.job_id}-{step.__name__.strip('_')}"
            threading.Thread(target=self._guarded, args=(step,), name=name, daemon=True).start()
        else:
            self._guarded(step)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run a step of the job's life; whatever fails, the head hears how the job ended."""
        try:
            step()
        except JobRefused as refused:
            self._clean_up()
            self._end(None, refused.reason, refused.message)
        except Exception as error:
            logger.exception("supervisor of job %s failed", self.job.job_id)
            self._clean_up()  # nobody would watch the job any more
            if self.job.status is None:
                self._end(None, "launch_error", f"node error: {error}")

    def _launch(self) -> None:
        account = self._account()
        self._check_directory(account)
        self.job.write_new("nodefile", self.spec.get("nodefile") or f"{self.host}\n")
        cpus = confinement.job_cpus(self.spec, self.host)
        self.cgroup = confinement.make_cgroup(self.config, self.host, self.job, cpus, self.spec)
        self.env = job_environment(self.spec, account, self.job.nodefile)
        self.env["OAR_CPUSET"] = confinement.cpuset_name(self.cgroup)
        self._write_job_key(account)
        failure = self._hook(self.config.prologue, self.env)
        if failure:
            raise JobRefused("prologue_error", f"prologue failed: {failure}")
        if self.job.kill_request is not None:
            raise JobRefused("killed", "killed before it started")
        self.process = self._start(account, self.env)
        self.pgid = self.process.pid
        try:
            confinement.confine(self.process, self.cgroup, cpus)
        except OSError as error:
            self.process = self.pgid = None  # killed and reaped: its pid may be reused
            raise JobRefused("launch_error", f"could not confine the job to its CPUs: {error}") from error
        self.started = time.monotonic()
        self.times["started_at"] = started_at = time.time()
        if self.cgroup is None:  # with a cgroup, membership tells a restarted worker the keeper runs
            self.keeper_start = process.start_time(self.pgid)
        self.job.record_keeper(self.pgid, self.keeper_start, started_at)
        process.release(self.process)
        reports.job_running(self.app, self.host, self.job.job_id, self.pgid)
        watcher().watch(self)

    def _write_job_key(self, account: Account) -> None:
        """The key ``oarsh`` finds in ``OAR_JOB_KEY_FILE``; a cluster without job-shell keys has none."""
        from oar_celery.node import jobshell

        try:
            path = jobshell.write_job_key(self.config, self.job, self.spec, account, time.time(), self.keys)
        except (OSError, ValueError) as error:
            logger.info("job %s: no job key (%s)", self.job.job_id, error)
            return
        self.env["OAR_JOB_KEY_FILE"] = str(path)

    def check(self, now: float) -> None:
        """Every :data:`POLL` seconds while the job runs: act on a kill request and on the walltime."""
        pgid = self.pgid
        assert pgid is not None
        kill = self.job.kill_request
        if kill is not None and self.reason != "killed":
            self.reason = "killed"
            if not kill.get("signalled"):
                jobcontrol.terminate(pgid, self.cgroup)
            self.hard_kill_at = now + max(0.0, kill["time"] + kill["grace"] - time.time())
        self._check_client(now)
        walltime = float(self.spec.get("walltime") or 0)
        if self.changes_checked <= now - 1.0:  # oarwalltime: a granted change, looked for once a second
            self.changes_checked = now
            self.spec["walltime"] = walltime = float(self.job.walltime or walltime)
        elapsed = now - self.started - self.job.suspended_seconds()
        if self.reason == "exited" and walltime > 0 and elapsed >= walltime + self.grace:
            self.reason = "walltime"
            logger.info("job %s: walltime backstop, SIGTERM", self.job.job_id)
            jobcontrol.terminate(pgid, self.cgroup)
            self.hard_kill_at = now + self.grace
        if self.hard_kill_at is not None and now >= self.hard_kill_at:
            logger.info("job %s: still alive after the grace time, SIGKILL", self.job.job_id)
            jobcontrol.kill_hard(pgid, self.cgroup)
            self.hard_kill_at = None
            self.hard_killed = True

    def _check_client(self, now: float) -> None:
        """``oarsub -I``: a client that never opened its shell is lost, and the job is killed, as Leon does."""
        timeout = float(self.spec.get("client_timeout") or 0)
        if not timeout or self.reason != "exited" or now - self.started < timeout:
            return
        self.spec["client_timeout"] = 0.0  # looked at once
        if self.job.read("session_exit.claimed") is None and self.job.kill_request is None:
            logger.warning("job %s: its interactive client never connected: the job is killed", self.job.job_id)
            self.job.request_kill(self.grace, signalled=False)

    def has_exited(self) -> bool:
        """Whether the keeper has exited (our child is not reaped by this).

        A keeper that is not our child is known by its cgroup (its pid in the
        job's cgroup after its exit would take a job process and pids that
        wrapped around), or else by its pid and start time.
        """
        pid = self.pgid or 0
        if self.process is None and self.cgroup is not None:
            return pid not in self.cgroup.pids()
        return process.has_exited(pid, self.keeper_start)

    def exited(self) -> None:
        """The keeper has exited: clean up, run the epilogue (in a thread of its own) and report."""
        self._run_step(self._finish, in_thread=bool(self.config.epilogue))

    def _finish(self) -> None:
        assert self.pgid is not None
        if self.reason == "exited" and self.job.kill_request is not None:
            self.reason = "killed"  # the job died of the kill before a check saw the request
        code = self._exit_code()
        self._clean_up()
        reason, message = self._outcome(self.reason, code)
        if reason == "launch_error":
            code = None
        failure = self._hook(self.config.epilogue, self.env)
        if failure:
            reason, message = "epilogue_error", f"epilogue failed: {failure} ({message})"
        self._end(code, reason, message)

    def _exit_code(self) -> int | None:
        """What the keeper recorded; else its own status (our child), or SIGKILL's if we sent it."""
        if self.spec.get("interactive"):  # the job was its oarsub -I shell: its status is the job's
            session = process.read_exit(self.job.path / "session_exit")
            if session is not None:
                return session
        recorded = process.read_exit(self.job.exit_file)
        if recorded is not None:
            return recorded
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid or 0, signal.SIGKILL)
            return process.exit_code(self.process.wait())
        return 128 + signal.SIGKILL if self.hard_killed else None

    def _clean_up(self) -> None:
        """Nothing of the job may outlive it: its group, its cgroup, its keeper's zombie."""
        # The group is only safe to kill while the keeper's pid cannot be reused: it is our child.
        ours = self.process is not None
        if not jobcontrol.clean_up(self.pgid if ours else None, self.cgroup):
            logger.error("job %s: processes of its cgroup survived SIGKILL", self.job.job_id)
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ChildProcessError):
                self.process.wait()

    def _account(self) -> Account:
        user = str(self.spec["user"])
        account = cached_account(user)
        if account is None:
            raise JobRefused("user_unknown", f"user {user} is unknown on node {self.host}")
        if os.geteuid() != 0 and account.uid != os.geteuid():
            worker_user = lookup_account_name(os.geteuid())
            raise JobRefused("launch_error", f"this node runs jobs of user {worker_user} only")
        if account.uid == 0 and not self.config.allow_root_jobs:
            raise JobRefused("launch_error", "jobs of root are not allowed")
        return account

    def _check_directory(self, account: Account) -> None:
        directory = str(self.spec.get("directory") or account.home)
        self.spec["directory"] = directory
        if not os.path.isdir(directory):
            raise JobRefused("launch_error", f"working directory {directory} does not exist on {self.host}")
        name = self.spec.get("name") or ""
        for stream in ("stdout", "stderr"):
            if not self.spec.get(stream):
                tag = f"{name}." if name else ""
                self.spec[stream] = os.path.join(directory, f"OAR.{tag}{self.job.job_id}.{stream}")

    def _hook(self, script: str, env: dict[str, str]) -> str:
        """Run the prologue or epilogue as the worker's user; '' if it succeeded."""
        if not script:
            return ""
        try:
            done = subprocess.run(
                [script, str(self.job.job_id), str(self.spec["user"])],
                env=env,
                cwd=str(self.job.path),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=HOOK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"{script} ran for more than {HOOK_TIMEOUT:.0f} s"
        except OSError as error:
            return f"{script}: {error.strerror or error}"
        if done.returncode == 0:
            return ""
        said = done.stderr.decode(errors="replace").strip().splitlines()
        status = f"{script} exited with {process.exit_code(done.returncode)}"
        return f"{status}: {said[-1]}" if said else status

    def _start(self, account: Account, env: dict[str, str]) -> subprocess.Popen[bytes]:
        try:
            return process.start_job(
                account,
                str(self.spec["command"]),
                self.spec["directory"],
                self.spec["stdout"],
                self.spec["stderr"],
                env,
                (self.job.exit_file, self.job.launch_errors),
            )
        except OSError as error:
            raise JobRefused("launch_error", f"could not start the job: {error}") from error

    def _outcome(self, reason: str, code: int | None) -> tuple[str, str]:
        wrapper_said = _read_tail(self.job.launch_errors)
        if wrapper_said:
            return "launch_error", f"could not start the job: {wrapper_said}"
        if code is None:
            return reason, "the job's exit status was lost (its keeper was killed while no worker watched)"
        if reason == "killed":
            return reason, f"killed on request (exit status {code})"
        if reason == "walltime":
            return reason, f"walltime reached, killed by node {self.host} (exit status {code})"
        return reason, f"the job exited with status {code}"

    def _end(self, code: int | None, reason: str, message: str) -> None:
        reports.job_ended(self.app, self.job, self.host, code, reason, message, **self.times)


def lookup_account_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read_tail(path: os.PathLike[str] | str) -> str:
    try:
        with open(path, "rb") as handle:
            lines = handle.read()[-2000:].decode(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""


class Watcher(threading.Thread):
    """Sees the jobs of this process end through their pidfds; checks kills and walltimes every POLL s.

    Where there is no pidfd (before Linux 5.3), an end is seen at the next check.
    """

    def __init__(self) -> None:
        super().__init__(name="oar-job-watcher", daemon=True)
        self._poll = select.poll()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._poll.register(self._wake_read, select.POLLIN)
        self._lock = threading.Lock()
        self._arriving: list[Supervisor] = []
        self._by_fd: dict[int, Supervisor] = {}
        self._without_fd: list[Supervisor] = []

    def watch(self, supervisor: Supervisor) -> None:
        """Watch a job whose process has started; thread-safe."""
        with self._lock:
            self._arriving.append(supervisor)
        os.write(self._wake_write, b"x")

    def run(self) -> None:
        next_check = time.monotonic() + POLL
        while True:
            ready = self._poll.poll(max(0.0, next_check - time.monotonic()) * 1000)
            self._take_arrivals()
            for fd, _ in ready:
                if fd == self._wake_read:
                    _drain(fd)
                elif fd in self._by_fd:
                    self._exited(self._by_fd.pop(fd), fd)
            now = time.monotonic()
            if now >= next_check:
                self._check_all(now)
                next_check = now + POLL

    def _take_arrivals(self) -> None:
        with self._lock:
            arriving, self._arriving = self._arriving, []
        for supervisor in arriving:
            assert supervisor.pgid is not None
            try:
                fd = os.pidfd_open(supervisor.pgid)
            except (AttributeError, OSError):
                self._without_fd.append(supervisor)
                continue
            self._by_fd[fd] = supervisor
            self._poll.register(fd, select.POLLIN)

    def _exited(self, supervisor: Supervisor, fd: int | None) -> None:
        if fd is not None:
            self._poll.unregister(fd)
            os.close(fd)
        try:
            supervisor.exited()
        except Exception:
            logger.exception("job %s: its end could not be handled", supervisor.job.job_id)

    def _check_all(self, now: float) -> None:
        for supervisor in [*self._by_fd.values(), *self._without_fd]:
            try:
                supervisor.check(now)
            except Exception:
                logger.exception("job %s: check failed", supervisor.job.job_id)
        for supervisor in [s for s in self._without_fd if s.has_exited()]:
            self._without_fd.remove(supervisor)
            self._exited(supervisor, None)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


_watchers: dict[int, Watcher] = {}
_watchers_lock = threading.Lock()


def watcher() -> Watcher:
    """This process's watcher (a forked child starts its own)."""
    with _watchers_lock:
        found = _watchers.get(os.getpid())
        if found is None or not found.is_alive():
            found = _watchers[os.getpid()] = Watcher()
            found.start()
        return found
