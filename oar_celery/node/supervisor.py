"""One thread per job: prologue, the job, epilogue, then the end report.

A running job is not a running Celery task: the Redis transport would deliver
an unacknowledged task again after its visibility timeout. So the launch task
only claims the job directory and starts this thread, which lives as long as
the job. The thread polls rather than blocks, because it must also act on
kill requests written by other tasks and on the walltime backstop. The
checkpoint signal is Sarko's alone (a ``CHECKPOINT`` event makes it happen
once); the backstop only fires ``grace`` seconds after the walltime, when the
head should already have killed the job.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import threading
import time
from typing import Any

from celery import Celery

from oar_celery.config import Settings
from oar_celery.node import process, reports
from oar_celery.node.environment import Account, job_environment, lookup_account
from oar_celery.node.jobdir import JobDir

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


class Supervisor(threading.Thread):
    """Runs and watches one job until its end is reported."""

    def __init__(self, app: Celery, config: Settings, host: str, job: JobDir, spec: dict[str, Any]) -> None:
        super().__init__(name=f"oar-job-{job.job_id}", daemon=True)
        self.app = app
        self.config = config
        self.host = host
        self.job = job
        self.spec = spec
        self.grace = float(spec.get("kill_grace") or config.kill_grace)
        self.times: dict[str, float | None] = {"launched_at": time.time(), "started_at": None}
        self.pgid: int | None = None

    def run(self) -> None:
        try:
            self._run()
        except JobRefused as refused:
            self._end(None, refused.reason, refused.message)
        except Exception as error:
            logger.exception("supervisor of job %s failed", self.job.job_id)
            if self.pgid is not None:  # nobody would watch the job any more
                process.signal_group(self.pgid, signal.SIGKILL)
            if self.job.status is None:
                self._end(None, "launch_error", f"node error: {error}")

    def _run(self) -> None:
        account = self._account()
        self._check_directory(account)
        self.job.write("nodefile", self.spec.get("nodefile") or f"{self.host}\n", durable=False)
        env = job_environment(self.spec, account, self.job.nodefile)
        failure = self._hook(self.config.prologue, env)
        if failure:
            raise JobRefused("prologue_error", f"prologue failed: {failure}")
        if self.job.kill_request is not None:
            raise JobRefused("killed", "killed before it started")
        job = self._start(account, env)
        self.pgid = job.pid
        self.times["started_at"] = time.time()
        self.job.write("pid", str(job.pid), durable=False)
        reports.job_running(self.app, self.host, self.job.job_id, job.pid)
        reason = self._watch(job)
        code = process.reap(job)
        reason, message = self._outcome(reason, code)
        failure = self._hook(self.config.epilogue, env)
        if failure:
            reason, message = "epilogue_error", f"epilogue failed: {failure} ({message})"
        self._end(code, reason, message)

    def _account(self) -> Account:
        user = str(self.spec["user"])
        account = lookup_account(user)
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
                self.job.launch_errors,
                f"oar-job-{self.job.job_id}",
            )
        except OSError as error:
            raise JobRefused("launch_error", f"could not start the job: {error}") from error

    def _watch(self, job: subprocess.Popen[bytes]) -> str:
        """Wait for the job's shell to exit, enforcing kills and the walltime; the reason."""
        pgid = job.pid
        started = time.monotonic()
        walltime = float(self.spec.get("walltime") or 0)
        reason = "exited"
        hard_kill_at: float | None = None
        with process.ExitWaiter(job.pid) as waiter:
            waiter.wait(POLL)
            while not process.has_exited(job.pid):
                now = time.monotonic()
                elapsed = now - started - self.job.suspended_seconds()
                kill = self.job.kill_request
                if kill is not None and reason != "killed":
                    reason = "killed"
                    if not kill.get("signalled"):
                        process.terminate_group(pgid)
                    hard_kill_at = now + max(0.0, kill["time"] + kill["grace"] - time.time())
                if reason == "exited" and walltime > 0 and elapsed >= walltime + self.grace:
                    reason = "walltime"
                    logger.info("job %s: walltime backstop, SIGTERM", self.job.job_id)
                    process.terminate_group(pgid)
                    hard_kill_at = now + self.grace
                if hard_kill_at is not None and now >= hard_kill_at:
                    logger.info("job %s: still alive after the grace time, SIGKILL", self.job.job_id)
                    process.signal_group(pgid, signal.SIGKILL)
                    hard_kill_at = None
                waiter.wait(POLL)
        if reason == "exited" and self.job.kill_request is not None:
            reason = "killed"  # the job died of the kill before the loop saw the request
        return reason

    def _outcome(self, reason: str, code: int) -> tuple[str, str]:
        wrapper_said = _read_tail(self.job.launch_errors)
        if wrapper_said:
            return "launch_error", f"could not start the job: {wrapper_said}"
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
