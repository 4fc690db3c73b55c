"""A node's launch path alone: ``N`` jobs of ``true``, one launch each, in this process.

What a node spends per job without the rest of the cluster's noise: no head,
no Celery consumer, no signature (``OAR_SIGNING=off``), only the node's own
code (``bipbip.start``: job directory, account, cgroup, job key, keeper,
watcher, end report). The job-shell keys are stand-ins written here and four
nodes are published on the benchmark's Redis database, so a job key is
written as on a real cluster; the reports go to that database. Jobs run one
after the other (the next starts once the previous one's status is written),
and the CPU of this process (every thread) and of the keepers it reaped is
read from ``getrusage``: on a machine shared with other work, CPU per job
moves far less than rates do.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import flush_redis, markdown_table, redis_url, report, state_root

JOBS = 500
QUICK_JOBS = 100
WARM_UP = 50
HOST = "bench-node"
#: Seconds a job of ``true`` may take before the round fails.
WAIT = 30.0


@dataclass
class NodeRound:
    """CPU per job, in milliseconds, of one round."""

    jobs: int
    worker_user: float
    worker_system: float
    keeper_user: float
    keeper_system: float
    seconds: float

    @property
    def total(self) -> float:
        return self.worker_user + self.worker_system + self.keeper_user + self.keeper_system


def _set_up(state: Path) -> None:
    """The environment of a node of its own, stand-in job-shell keys, four published nodes."""
    os.environ.update(
        OAR_STATE_DIR=str(state), OAR_BROKER_URL=redis_url(), OAR_NODE_HOSTNAME=HOST,
        OAR_CONFIG_FILE=str(state / "absent.conf"), OAR_ALLOW_ROOT_JOBS="yes", OAR_SIGNING="off",
        OAR_LOG_LEVEL="WARNING",
    )
    from oar_celery.config import settings

    settings.cache_clear()  # read again: this round's state directory
    tls = state / "keys" / "tls"
    tls.mkdir(parents=True)
    (tls / "jobshell.key").write_bytes(b"k" * 64 + b"\n")
    (tls / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n" + "A" * 1200 + "\n-----END CERTIFICATE-----\n")
    flush_redis()
    import redis

    from oar_celery.protocol.names import Key

    client = redis.Redis.from_url(redis_url())
    for index in range(4):
        client.hset(Key.JOBSHELL_SERVICES, f"{HOST}{index or ''}", json.dumps({"address": "127.0.0.1", "port": 7000}))


def _spec(job_id: int, user: str, work: Path) -> dict[str, object]:
    return {"job_id": job_id, "user": user, "command": "true", "directory": str(work), "hosts": [HOST],
            "cpusets": {HOST: [job_id % 2]}, "walltime": 60, "name": "", "nodefile": f"{HOST}\n"}


def _run(first: int, count: int, user: str, state: Path) -> None:
    """Launch the jobs one after the other, each once the previous one's end is recorded."""
    from oar_celery.tasks import bipbip

    work = state / "work"
    jobs = state / "nodes" / HOST / "jobs"
    for job_id in range(first, first + count):
        outcome = bipbip.start(_spec(job_id, user, work))  # type: ignore[arg-type]
        if not outcome.get("launched"):
            raise RuntimeError(f"job {job_id} was not launched: {outcome}")
        status, deadline = jobs / str(job_id) / "status.json", time.monotonic() + WAIT
        while not status.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not end within {WAIT:.0f} s")
            time.sleep(0.002)


def run_round(jobs: int) -> NodeRound:
    """One round on a state directory of its own."""
    import pwd

    state = Path(tempfile.mkdtemp(prefix="oar-bench-node-", dir=state_root()))
    try:
        _set_up(state)
        (state / "work").mkdir()
        user = pwd.getpwuid(os.geteuid()).pw_name
        _run(1, WARM_UP, user, state)
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        _run(1000, jobs, user, state)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        time.sleep(0.2)  # the last end report leaves
        shutil.rmtree(state, ignore_errors=True)

    def per_job(which: int, field: str) -> float:
        return (getattr(after[which], field) - getattr(before[which], field)) * 1000 / jobs

    return NodeRound(jobs, per_job(0, "ru_utime"), per_job(0, "ru_stime"), per_job(1, "ru_utime"),
                     per_job(1, "ru_stime"), seconds)


def main(args: list[str], *, write: bool = True) -> None:
    jobs = QUICK_JOBS if "--quick" in args else JOBS
    rounds = [run_round(jobs) for _ in range(3)]
    rows = [[f"{r.jobs:,}", f"{r.worker_user:.2f}", f"{r.worker_system:.2f}", f"{r.keeper_user:.2f}",
             f"{r.keeper_system:.2f}", f"{r.total:.2f}", f"{r.seconds * 1000 / r.jobs:.1f} ms"] for r in rounds]
    text = (
        f"One node's launch path in one process (`bipbip.start`, no Celery, unsigned), {os.cpu_count()} CPUs "
        "shared by every process; jobs of `true` one after the other, three rounds. CPU per job in milliseconds "
        "(`getrusage`: the process's every thread, and the keepers it reaped).\n\n"
        + markdown_table(["jobs", "worker user", "worker system", "keeper user", "keeper system", "total",
                          "wall per job"], rows)
    )
    report("Node launch path alone", text, "python -m bench node " + " ".join(args), write=write)
