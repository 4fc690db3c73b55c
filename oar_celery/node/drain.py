"""Stopping every job of a node on purpose: ``oar-celery worker node --hostname NODE --stop-jobs``.

Stopping a node worker does not stop its jobs (the next worker adopts
them), so an admin who wants a node empty asks for it explicitly. Each job
gets the kill the head would send (SIGTERM, SIGKILL after the grace time,
everything in its cgroup removed) and its end is reported to the head as
``killed``. The jobs a live worker watches are ended by that worker; those
no worker watches are adopted by this command for the time of their end.
"""

from __future__ import annotations

import time

from celery import Celery

from oar_celery.config import Settings
from oar_celery.node import jobcontrol, recovery, reports
from oar_celery.node.jobdir import JobDir, all_jobs

#: Seconds given, beyond the grace time, for the ends to be recorded.
MARGIN = 10.0


def running_jobs(config: Settings, host: str) -> list[JobDir]:
    return [job for job in all_jobs(config.node_dir, host) if job.status is None]


def stop_jobs(app: Celery, config: Settings, host: str, grace: float | None = None) -> list[int]:
    """Kill every job of ``host`` and wait until each end is recorded; the ids of those that did not end."""
    grace = config.kill_grace if grace is None else grace
    jobs = running_jobs(config, host)
    recovery.recover(app, config, host)  # the unwatched ones are watched from here until they end
    for job in jobs:
        if job.status is not None:  # ended while no worker watched it: just reported
            continue
        pgid = job.pid
        job.request_kill(grace, signalled=pgid is not None)
        if pgid is not None:
            jobcontrol.terminate(pgid, jobcontrol.job_cgroup(job))
    deadline = time.monotonic() + grace + MARGIN
    while time.monotonic() < deadline and any(job.status is None for job in jobs):
        time.sleep(0.1)
    time.sleep(reports.GATHER * 4)  # the sender's batch in progress goes out before the last flush
    reports.sender(app).flush()
    return [job.job_id for job in jobs if job.status is None]
