"""What a node worker does with the jobs a previous worker left behind.

Jobs are watched by a thread of their worker: when the worker dies, its jobs
lose their watcher (they run in sessions of their own, so they live on).
Nobody would enforce their walltime or report their end, so a new worker
kills them and reports them ``killed``. A job whose watching worker is still
alive (two workers serving one host) is left alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from celery import Celery

from oar_celery.config import Settings
from oar_celery.node import process, reports
from oar_celery.node.jobdir import JobDir, all_jobs

logger = logging.getLogger(__name__)

MESSAGE = "node worker restarted"


def orphans(config: Settings, host: str) -> list[JobDir]:
    """Jobs of ``host`` with no final status and no live worker watching them."""
    return [job for job in all_jobs(config.node_dir, host) if job.status is None and not _watched(job)]


def recover(app: Celery, config: Settings, host: str) -> list[int]:
    """Kill and report every orphan in the background; their ids."""
    found = orphans(config, host)
    for job in found:
        threading.Thread(
            target=_end_orphan, args=(app, config, host, job), name=f"oar-orphan-{job.job_id}", daemon=True
        ).start()
    if found:
        logger.warning("node %s: orphaned jobs %s, killing them", host, [job.job_id for job in found])
    return [job.job_id for job in found]


def _end_orphan(app: Celery, config: Settings, host: str, job: JobDir) -> None:
    pgid = job.pid
    if pgid is not None and process.terminate_group(pgid):
        deadline = time.monotonic() + config.kill_grace
        while process.group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.signal_group(pgid, signal.SIGKILL)
    reports.job_ended(app, job, host, None, "killed", MESSAGE)


def _watched(job: JobDir) -> bool:
    """Whether another live Celery worker process supervises ``job``."""
    owner = job.owner
    if owner is None or owner == os.getpid():
        return False
    try:
        command = Path(f"/proc/{owner}/cmdline").read_bytes()
    except OSError:
        return False
    return b"celery" in command
