"""Latency: on an idle cluster, ``oarsub`` spawned → the job's process starting → ``Terminated``.

The clock starts just before the ``oarsub`` process is spawned, so the figure
includes the interpreter's start, the imports and the command's own work; the
intervals measured from ``oarsub``'s return are kept beside it. ``oarsub``
runs with bytecode caching allowed (``PYTHONDONTWRITEBYTECODE`` dropped), as
an installed package has its ``.pyc`` files: otherwise every run compiles the
command's modules again, tens of milliseconds no user pays.

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


def installed_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without ``PYTHONDONTWRITEBYTECODE``: the modules' bytecode is cached as an install caches it."""
    return {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}


def one_job(bench: BenchCluster, marks: Path) -> tuple[float, float, float, float]:
    """Submit one job with the ``oarsub`` command; the four intervals in seconds.

    (spawned → started, oarsub's own run, returned → started, returned → Terminated).
    """
    spawned = time.time()
    done = subprocess.run(
        [command("oarsub"), "-l", "/resource_id=1", f"date +%s.%N > {marks}/start.$OAR_JOB_ID"],
        env=installed_env(bench.env), cwd=bench.workdir, capture_output=True, text=True, timeout=60,
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
    return started - spawned, returned - spawned, started - returned, bench.last_stop([job_id]) - returned


def main(args: list[str], *, write: bool = True) -> None:
    jobs = QUICK_JOBS if "--quick" in args else JOBS
    with BenchCluster(4, 4) as bench:
        from oar_celery.config import settings

        pause = settings().scheduler_min_time + 0.05
        marks = bench.workdir / "marks"
        marks.mkdir()
        one_job(bench, marks)  # warm the workers' connections and oarsub's bytecode
        samples = []
        for _ in range(jobs):
            time.sleep(pause)
            samples.append(one_job(bench, marks))
    names = [
        "oarsub spawned → job process started",
        "oarsub spawned → oarsub returned",
        "oarsub returned → job process started",
        "oarsub returned → Terminated in the DB",
    ]
    rows = []
    for index, name in enumerate(names):
        figures = quantiles([sample[index] for sample in samples])
        rows.append([name, *(f"{figures[k] * 1000:.0f} ms" for k in ("median", "p95", "max"))])
    text = (
        f"{jobs} jobs one after another with the `oarsub` command on an idle 4 × 4 cluster "
        f"(pause {pause:.2f} s between jobs: the scheduler's minimum time between two runs).\n\n"
        + markdown_table(["interval", "median", "p95", "max"], rows)
    )
    report("Latency", text, "python -m bench latency " + " ".join(args), write=write)
