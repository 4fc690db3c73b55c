"""Latency: on an idle cluster, ``oarsub`` returning → the job's process starting → ``Terminated``.

Jobs go one after another: each job writes ``date +%s.%N`` into a file as its
first act, the harness waits for ``Terminated`` and leaves the cluster idle for
the scheduler's minimum time between two runs before the next ``oarsub``, so
every job meets an idle cluster as the issue asks. The start time comes from
the job, the end time from the head (``jobs.stop_time``), on the same clock.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from bench.common import markdown_table, quantiles, report
from bench.localcluster import BenchCluster, command

JOBS = 50
QUICK_JOBS = 10


def one_job(bench: BenchCluster, marks: Path) -> tuple[float, float]:
    """Submit one job with the ``oarsub`` command; (to start, to Terminated) in seconds."""
    done = subprocess.run(
        [command("oarsub"), "-l", "/resource_id=1", f"date +%s.%N > {marks}/start.$OAR_JOB_ID"],
        env=bench.env, cwd=bench.workdir, capture_output=True, text=True, timeout=60,
    )
    returned = time.time()
    match = re.search(r"^OAR_JOB_ID=(\d+)$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"oarsub failed: {done.stdout} {done.stderr}")
    job_id = int(match.group(1))
    states = bench.wait_final([job_id], timeout=60, poll=0.01)
    if states.get("Terminated") != 1:
        raise RuntimeError(f"job {job_id} ended {states}")
    started = float((marks / f"start.{job_id}").read_text().strip())
    return started - returned, bench.last_stop([job_id]) - returned


def main(args: list[str], *, write: bool = True) -> None:
    jobs = QUICK_JOBS if "--quick" in args else JOBS
    with BenchCluster(4, 4) as bench:
        from oar_celery.config import settings

        pause = settings().scheduler_min_time + 0.05
        marks = bench.workdir / "marks"
        marks.mkdir()
        one_job(bench, marks)  # warm the workers' connections
        samples = []
        for _ in range(jobs):
            time.sleep(pause)
            samples.append(one_job(bench, marks))
    start = quantiles([s for s, _ in samples])
    end = quantiles([e for _, e in samples])
    rows = [
        ["oarsub returned → job process started", *(f"{start[k] * 1000:.0f} ms" for k in ("median", "p95", "max"))],
        ["oarsub returned → Terminated in the DB", *(f"{end[k] * 1000:.0f} ms" for k in ("median", "p95", "max"))],
    ]
    text = (
        f"{jobs} jobs one after another with the `oarsub` command on an idle 4 × 4 cluster "
        f"(pause {pause:.2f} s between jobs: the scheduler's minimum time between two runs).\n\n"
        + markdown_table(["interval", "median", "p95", "max"], rows)
    )
    report("Latency", text, "python -m bench latency " + " ".join(args), write=write)
