"""Benchmark of one pure scheduling round (no database, no Celery).

Workload (the issue's): nodes of 2 cpus x 2 cores, one resource per core, all
Alive, nothing running; 70% of jobs ask ``/resource_id=k`` (k uniform in 1..8),
30% ``/nodes=k`` (k in 1, 2); walltimes drawn from 5..120 minutes; FIFO;
security time 60 s; ``random.seed(42)``.

Run ``python -m bench.scheduler`` (``--quick`` for the small sizes only). It
prints a markdown table and appends it to ``BENCHMARKS.md`` under
``## Scheduler (pure)``. :func:`build_workload` is reused by the database
round-trip variant.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

from oar_celery.scheduler import Job, Level, Moldable, Resource, ResourceGroup, schedule

NOW = 1_700_000_000
SECURITY_TIME = 60
WALLTIMES_MIN = (5, 10, 15, 30, 45, 60, 90, 120)
SIZES = [
    (1_000, 1_000),
    (10_000, 1_000),
    (50_000, 1_000),
    (1_000, 10_000),
    (10_000, 10_000),
    (50_000, 10_000),
]
QUICK_SIZES = [(1_000, 1_000), (10_000, 1_000)]
#: beyond this a size is reported as capped instead of being run again at a larger scale.
SLOW_SECONDS = 60.0
HEADING = "## Scheduler (pure)"
REPEATS = 3
DESCRIPTION = (
    "One `schedule()` call, no database: nodes of 2 cpus x 2 cores (one resource per core, all Alive,\n"
    "nothing running); 70% of jobs ask `/resource_id=k` (k in 1..8), 30% `/nodes=k` (k in 1, 2); walltimes\n"
    "5..120 min; FIFO; security time 60 s; seed 42. Time: best of 3 runs up to 10,000 jobs x 1,000 resources,\n"
    "one run above. Peak memory is tracemalloc's, on a separate identical call.\n"
    "Source: `bench/scheduler.py`."
)


def build_workload(n_jobs: int, n_resources: int, seed: int = 42) -> tuple[list[Resource], list[Job]]:
    """The issue's cluster and waiting jobs (deterministic for a given seed)."""
    rng = random.Random(seed)
    resources = []
    for rid in range(1, n_resources + 1):
        core = rid - 1
        node, cpu = core // 4, core // 2
        resources.append(
            Resource(id=rid, network_address=f"node-{node + 1}", properties={"cpu": cpu + 1, "core": core + 1})
        )
    jobs = []
    for job_id in range(1, n_jobs + 1):
        if rng.random() < 0.7:
            level = Level("resource_id", rng.randint(1, 8))
        else:
            level = Level("network_address", rng.choice((1, 2)))
        walltime = rng.choice(WALLTIMES_MIN) * 60
        # Distinct ids, as rows loaded from the database have.
        moldable = Moldable(groups=(ResourceGroup((level,)),), walltime=walltime, moldable_id=job_id)
        jobs.append(Job(id=job_id, moldables=[moldable], submission_time=NOW - n_jobs + job_id, user="bench"))
    return resources, jobs


def measure(n_jobs: int, n_resources: int) -> dict[str, object]:
    """Wall time and peak traced memory of one ``schedule()`` call."""
    resources, jobs = build_workload(n_jobs, n_resources)
    # Best of a few runs for the quick sizes: the machine may be shared and time is noisy.
    seconds = cpu_seconds = float("inf")
    for _ in range(REPEATS if n_jobs * n_resources <= 10**7 else 1):
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = schedule(NOW, resources, [], jobs, security_time=SECURITY_TIME)
        seconds = min(seconds, time.perf_counter() - started)
        cpu_seconds = min(cpu_seconds, time.process_time() - cpu_started)
    # Memory is measured on a second, identical run: tracing slows Python down.
    gc.collect()
    tracemalloc.start()
    schedule(NOW, resources, [], jobs, security_time=SECURITY_TIME)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    now_count = sum(1 for a in result.placements if a.start == NOW)
    return {
        "jobs": n_jobs,
        "resources": n_resources,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "per_job_us": seconds / n_jobs * 1e6,
        "peak_mib": peak / 2**20,
        "placed": len(result.placements),
        "start_now": now_count,
        "unplaceable": len(result.unplaceable),
    }


def run(sizes: Iterable[tuple[int, int]] = SIZES) -> list[dict[str, object]]:
    """Measure every (jobs, resources) size; skip sizes beyond one that took over a minute."""
    rows: list[dict[str, object]] = []
    slow: set[int] = set()  # resource counts at which a smaller job count was already too slow
    for n_jobs, n_resources in sizes:
        if n_resources in slow:
            rows.append(
                {
                    "jobs": n_jobs,
                    "resources": n_resources,
                    "skipped": f"capped: smaller size > {SLOW_SECONDS:.0f} s",
                }
            )
            continue
        row = measure(n_jobs, n_resources)
        rows.append(row)
        if float(row["seconds"]) > SLOW_SECONDS:  # type: ignore[arg-type]
            slow.add(n_resources)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| waiting jobs | resources | schedule() wall | CPU | per job (wall) | peak memory "
        "| start now | placed | unplaceable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['jobs']:,} | {row['resources']:,} | {row['skipped']} | | | | | | |")
            continue
        wall, cpu = float(row["seconds"]), float(row["cpu_seconds"])  # type: ignore[arg-type]
        per_job, peak = float(row["per_job_us"]), float(row["peak_mib"])  # type: ignore[arg-type]
        lines.append(
            f"| {row['jobs']:,} | {row['resources']:,} | {wall:.3f} s | {cpu:.3f} s | {per_job:.0f} µs "
            f"| {peak:.1f} MiB | {row['start_now']:,} | {row['placed']:,} | {row['unplaceable']:,} |"
        )
    return "\n".join(lines)


def _machine() -> str:
    memory = "unknown"
    try:
        with open("/proc/meminfo") as meminfo:
            total_kib = int(meminfo.readline().split()[1])
        memory = f"{total_kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"
    return (
        f"nproc {os.cpu_count()}, memory {memory}, load average {load}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )


def append_report(markdown: str, command: str, path: Path = Path("BENCHMARKS.md")) -> None:
    """Append a dated run under the scheduler heading, creating the heading if needed."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n### {stamp}\n\n`{command}` — {_machine()}\n\n{markdown}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{DESCRIPTION}\n"
    start = text.index(HEADING)
    following = text.find("\n## ", start + len(HEADING))  # the next section, if any
    end = len(text) if following < 0 else following
    text = text[:end].rstrip("\n") + "\n" + entry + text[end:]
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sizes = QUICK_SIZES if "--quick" in args else SIZES
    rows = run(sizes)
    markdown = table(rows)
    print(markdown)
    if "--no-write" not in args:
        append_report(markdown, " ".join(["python -m bench.scheduler", *args]))


if __name__ == "__main__":
    main()
