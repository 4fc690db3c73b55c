"""``oarsub -I`` and ``oarsub -C``: a shell in a job, on its first node, with OAR's messages.

``-I`` waits for the job to start ("Interactive mode: waiting...", then the
start), asks the head for the job's key (an authenticated request: the owner's
or an admin's only), connects to the first node's job-shell service and gives
the user its terminal. The shell is the job: its exit status is the job's and
``oarsub``'s, and the job ends at its walltime, which the user is told. An
interrupted wait deletes the job, as OAR does.
"""

from __future__ import annotations

import datetime
import signal
import sys
import time
from typing import Any

from oar_celery.cli.common import EXIT_FAILURE, error_line
from oar_celery.client.errors import ClientError
from oar_celery.protocol.jobshell import JobKey

COMMAND = "oarsub"
#: Seconds between two looks at a waiting interactive job's state (one a second after ten seconds).
POLL = 0.05
#: What OAR3's oarsub exits with when the job is over before the user got a shell.
EXIT_NOT_STARTED = 11
EXIT_TERMINATED = 255
_FINAL = ("Terminated", "Error")


def _info(text: str) -> None:
    print(text, flush=True)


def _stamp() -> str:
    return datetime.datetime.now().strftime("[%Y-%m-%d %H:%M:%S]")


def wait_for_start(job_id: int) -> str:
    """Until the job runs (or will never): its state. OAR's lines as the job moves.

    The head is asked (the job-key request answers with the state): a
    command that reads the database pays SQLAlchemy's import and a
    connection, seconds on a loaded login node. The asking slows down as the
    wait grows long.
    """
    from oar_celery.client import api

    seen, started = "", time.monotonic()
    while True:
        try:
            state = str(api.job_key(job_id).get("state"))
        except ClientError as error:  # the job has ended (or was never ours)
            if "has ended" not in str(error):
                raise
            state = "Error"
        if state != seen and state in ("Launching", "Running"):
            _info(f"{_stamp()} Starting...")
        seen = state
        if state == "Running" or state in _FINAL:
            return state
        time.sleep(POLL if time.monotonic() - started < 10 else 1.0)


def running_key(job_id: int) -> JobKey:
    """The key of a running job, with its ticket and nodes (the head may lag the node by an instant)."""
    from oar_celery.client import api

    for _ in range(50):
        answer = api.job_key(job_id)
        key: JobKey = answer["job_key"]
        if answer.get("state") != "Running":
            raise ClientError(f"Job {job_id} is not running, current state is {answer.get('state')}.")
        if key.get("first_host") and key.get("first_host") in (key.get("nodes") or {}):
            return key
        time.sleep(POLL)
    raise ClientError(f"the first node of job {job_id} publishes no job-shell service")


def interactive(job_id: int, export_file: str | None) -> int:
    """``oarsub -I`` once the job is submitted."""
    _info("Interactive mode: waiting...")
    previous = signal.signal(signal.SIGHUP, _interrupt)
    try:
        state = wait_for_start(job_id)
    except KeyboardInterrupt:
        return _give_up(job_id)
    finally:
        signal.signal(signal.SIGHUP, previous)
    if state != "Running":
        error_line(COMMAND, f"job {job_id} ended before it started ({state})")
        return EXIT_NOT_STARTED
    return shell(job_id, main=True, export_file=export_file)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _give_up(job_id: int) -> int:
    """The user stopped waiting: the job is deleted, as OAR's oarsub does."""
    from oar_celery.client import api

    _info(f"Deleting the job = {job_id} ...")
    try:
        api.delete([job_id])
    except ClientError as error:
        error_line(COMMAND, error)
    _info("REGISTERED.")
    return 130


def shell(job_id: int, *, main: bool, export_file: str | None = None) -> int:
    """A terminal on the job's first node until the shell, the job or the connection ends."""
    from oar_celery.client import jobshell
    from oar_celery.config import settings

    key = running_key(job_id)
    if export_file:
        jobshell.write_key_file(export_file, key)
        _info(f"# Info: export job key to file: {export_file.replace('%jobid%', str(job_id))}")
    host = str(key.get("first_host"))
    tty_mode = sys.stdin.isatty()
    sock = jobshell.open_session(settings().keys, key, host, None, tty_mode=tty_mode, main=main)
    _info(f"Connect to OAR job {job_id} via the node {host}")
    with sock:
        outcome = jobshell.relay(sock, tty_mode=tty_mode)
    return _ended(job_id, host, outcome.code, outcome.reason, main=main)


def _ended(job_id: int, host: str, code: int, reason: str, *, main: bool) -> int:
    if reason == "walltime":
        _info(f"Job {job_id} has reached its walltime: it was killed.")
        error_line(COMMAND, "Job was terminated.")
        return EXIT_TERMINATED
    if reason in ("killed", "lost"):
        _info(f"Connection to {host} closed.")
        error_line(COMMAND, "Job was terminated.")
        return EXIT_TERMINATED
    if main:
        _info(f"Disconnected from OAR job {job_id}")
    return code


def connect(job_id: int) -> int:
    """``oarsub -C JOBID``: one more shell in a running job (the owner's, or an admin's)."""
    try:
        return shell(job_id, main=False)
    except ClientError as error:
        error_line(COMMAND, error)
        return EXIT_FAILURE
