"""The user commands' own cost: ``oarsub`` start-up and a real submission, ``oarstat`` of 10,000 jobs.

Timed as a user sees them: the wall time of the command, process start
included, median of several runs. ``oarstat`` reads the database directly, so
it is timed against 10,000 waiting jobs in a database with no cluster running
(nothing moves them while it reads).
"""

from __future__ import annotations

import statistics
import subprocess
import time

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster, command

RUNS = 10


def wall(argv: list[str], bench: BenchCluster, runs: int) -> float:
    """Median wall time of a command; fails if it fails."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=bench.env, cwd=bench.workdir, capture_output=True, text=True, timeout=60)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} failed: {done.stderr}")
    return statistics.median(times)


def oarstat_rows(jobs: int, runs: int) -> list[list[object]]:
    from bench.scheduler_db import add_resources, load_jobs

    with BenchCluster(start=False) as bench:
        bench.init_database()
        add_resources(bench, 16)
        load_jobs(jobs, 16)
        rows = [
            [f"`oarstat` ({jobs:,} current jobs)", f"{wall([command('oarstat')], bench, runs) * 1000:.0f} ms"],
            [f"`oarstat -J` ({jobs:,} jobs, full JSON)", f"{wall([command('oarstat'), '-J'], bench, 3) * 1000:.0f} ms"],
        ]
        from oar_celery.db.session import dispose_engines

        dispose_engines()
    return rows


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    runs = 3 if quick else RUNS
    with BenchCluster(1, 4) as bench:
        rows = [
            ["`oarsub --help`", f"{wall([command('oarsub'), '--help'], bench, runs) * 1000:.0f} ms"],
            ["`oarsub -l /resource_id=1 true` (answered by the head)",
             f"{wall([command('oarsub'), '-l', '/resource_id=1', 'true'], bench, runs) * 1000:.0f} ms"],
            ["`python -c pass` (the interpreter alone)",
             f"{wall([command('python'), '-c', 'pass'], bench, runs) * 1000:.0f} ms"],
        ]
    rows += oarstat_rows(1_000 if quick else 10_000, runs)
    table = markdown_table(["command", "wall time"], rows)
    text = f"Median wall time of {runs} runs, process start included.\n\n{table}"
    report("User commands", text, "python -m bench startup " + " ".join(args), write=write)
