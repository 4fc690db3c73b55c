"""What a node worker does with the jobs a previous worker left behind: it adopts them.

A job does not depend on the worker that started it: its keeper runs in a
session of its own and records the job's exit status in the job directory
(``process.py``). So a worker that starts (after a SIGTERM, a kill -9, an
upgrade) takes over every job of its host that no live worker watches: a job
still running is watched again (walltime, kill requests, its end), a job
that ended meanwhile is reported with the exit status its keeper recorded.
Only a job that never started (its worker died during the prologue) is
ended, as killed; a job whose keeper disappeared without a status is
reported with none. A job whose watching worker is still alive (two workers
serving one host) is left alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import Celery

from oar_celery.config import Settings
from oar_celery.node import jobcontrol, reports
from oar_celery.node.cgroup import node_hierarchy
from oar_celery.node.jobdir import JobDir, all_jobs
from oar_celery.node.supervisor import Supervisor, watcher

logger = logging.getLogger(__name__)

MESSAGE = "node worker restarted"


def orphans(config: Settings, host: str) -> list[JobDir]:
    """Jobs of ``host`` with no final status and no live worker watching them."""
    return [job for job in all_jobs(config.node_dir, host) if job.status is None and not _watched(job)]


def recover(app: Celery, config: Settings, host: str) -> list[int]:
    """Adopt every orphan: watch those still running, report those that ended; their ids."""
    found = orphans(config, host)
    for job in found:
        try:
            _adopt(app, config, host, job)
        except Exception:
            logger.exception("job %s: could not be adopted", job.job_id)
    if found:
        logger.warning("node %s: adopted the jobs %s of a previous worker", host, [job.job_id for job in found])
    _sweep(config, host)
    return [job.job_id for job in found]


def _sweep(config: Settings, host: str) -> None:
    """Remove the empty cgroups of jobs that no longer run here."""
    hierarchy = node_hierarchy(config.cgroup_root, config.cgroup_name, favordynmods=config.cgroup_favordynmods)
    if hierarchy is not None:
        hierarchy.sweep(host, lambda job_id: _running(JobDir.of(config.node_dir, host, job_id)))


def _running(job: JobDir) -> bool:
    return job.exists() and job.status is None


def _adopt(app: Celery, config: Settings, host: str, job: JobDir) -> None:
    job.write("owner", str(os.getpid()), durable=False)
    supervisor = Supervisor.adopt(app, config, host, job)
    if supervisor is None:  # the worker died before the job started: nothing ran, nothing to watch
        jobcontrol.clean_up(None, jobcontrol.job_cgroup(job))
        reports.job_ended(app, job, host, None, "killed", MESSAGE)
        return
    if supervisor.has_exited():
        logger.info("job %s ended while no worker watched it", job.job_id)
        supervisor.exited()
    else:
        watcher().watch(supervisor)


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
