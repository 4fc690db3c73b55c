"""Throughput: many one-core jobs of ``true`` from submission to ``Terminated``.

Two ways in, as the issue allows: the Python client API in one process
(``api.submit_many``, batches of requests in one message each) and one
``oarsub --array N`` command. Both rates are reported separately: submission
alone (first call → every id known) and end to end (first call → last job
``Terminated``, the head's own stop time). The ``oarsub`` start-up rows are in
:mod:`bench.startup`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.common import markdown_table, report
from bench.cpu import CpuMeter
from bench.localcluster import BenchCluster, command

JOBS = 2_000
QUICK_JOBS = 200
BATCH = 500


@dataclass
class Round:
    """One throughput round."""

    mode: str
    jobs: int
    submit_seconds: float
    end_seconds: float
    states: dict[str, int]
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def submit_rate(self) -> float:
        return self.jobs / self.submit_seconds

    @property
    def end_rate(self) -> float:
        return self.jobs / self.end_seconds


def request(workdir: str) -> dict[str, object]:
    return {"command": "true", "resources": ["/resource_id=1"], "directory": workdir}


def submit_api(bench: BenchCluster, jobs: int) -> list[int]:
    """Submit through the client API of this process, in batches."""
    from oar_celery.client import api

    base = request(str(bench.workdir))
    ids: list[int] = []
    if hasattr(api, "submit_many"):
        for start in range(0, jobs, BATCH):
            for job_ids in api.submit_many([dict(base) for _ in range(min(BATCH, jobs - start))]):
                if isinstance(job_ids, Exception):
                    raise job_ids
                ids.extend(job_ids)
    else:
        for _ in range(jobs):
            ids.extend(api.submit(dict(base)))
    return ids


def submit_array(bench: BenchCluster, jobs: int) -> list[int]:
    """One ``oarsub --array N true`` command."""
    done = subprocess.run(
        [command("oarsub"), "--array", str(jobs), "-l", "/resource_id=1", "true"],
        env=bench.env, cwd=bench.workdir, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"oarsub --array failed: {done.stderr}")
    return [int(x) for x in re.findall(r"^OAR_JOB_ID=(\d+)$", done.stdout, re.M)]


def run_round(bench: BenchCluster, jobs: int, mode: str = "api", timeout: float = 600) -> Round:
    """Submit ``jobs`` jobs and wait until all have ended."""
    meter = cpu_meter(bench)
    meter.start()
    started = time.time()
    ids = submit_api(bench, jobs) if mode == "api" else submit_array(bench, jobs)
    submitted = time.time()
    states = bench.wait_final(ids, timeout=timeout)
    ended = bench.last_stop(ids)
    meter.stop()
    seconds = max(ended, submitted) - started
    return Round(mode, len(ids), submitted - started, seconds, states, meter.per_job_ms(len(ids)))


def cpu_meter(bench: BenchCluster) -> CpuMeter:
    """The cluster's processes, its nodes as one part, its database's PostgreSQL backends and its Redis server.

    On SQLite the database is the head's and the clients' own work: no part of its own.
    """
    procs = bench.processes()
    services: dict[str, Callable[[], list[int]]] = {"redis": bench.redis_pids}
    if not bench.sqlite:
        services = {"postgresql": bench.backend_pids, **services}
    meter = CpuMeter({name: pid for name, pid in procs.items() if not name.startswith("node")}, services)
    meter.groups.update({name: pid for name, pid in procs.items() if name.startswith("node")})
    return meter


def cpu_table(rounds: list[Round]) -> str:
    """Milliseconds of CPU per job by part (the nodes summed), one row per round."""
    parts = [p for p in rounds[0].cpu_ms if not p.startswith("node") and p != "total"]
    header = ["submission", *parts, "nodes", "total"]
    rows = []
    for r in rounds:
        nodes = sum(v for k, v in r.cpu_ms.items() if k.startswith("node"))
        rows.append([r.mode, *(f"{r.cpu_ms[p]:.2f}" for p in parts), f"{nodes:.2f}", f"{r.cpu_ms['total']:.2f}"])
    return markdown_table(header, rows)


def rows_of(rounds: list[Round], memory: dict[str, float] | None = None) -> list[list[object]]:
    rows = []
    for r in rounds:
        bad = sum(v for k, v in r.states.items() if k != "Terminated")
        rows.append([
            r.mode, f"{r.jobs:,}", f"{r.submit_seconds:.2f} s", f"{r.submit_rate:,.0f} jobs/s",
            f"{r.end_seconds:.2f} s", f"{r.end_rate:,.0f} jobs/s", bad,
        ])
    return rows


HEADER = ["submission", "jobs", "submit time", "submission rate", "end to end", "end-to-end rate", "not Terminated"]


def memory_table(peaks: dict[str, float]) -> str:
    return markdown_table(["process", "peak RSS"], [[name, f"{mib:.0f} MiB"] for name, mib in peaks.items()])


def signing_cost(args: list[str], *, write: bool = True) -> None:
    """``--signing``: the same API round unsigned (``OAR_SIGNING=off``) and signed, alternated, in one session.

    Each round has a cluster of its own; the CPU per job (from ``/proc``) is
    what the shared machine's load disturbs least.
    """
    jobs = QUICK_JOBS if "--quick" in args else JOBS
    rounds: dict[str, list[Round]] = {"unsigned": [], "signed": []}
    for variant in ("unsigned", "signed", "unsigned", "signed"):
        with BenchCluster(4, 4, OAR_SIGNING="off" if variant == "unsigned" else "auto") as bench:
            rounds[variant].append(run_round(bench, jobs, "api"))
    rows = []
    for variant, done in rounds.items():
        for r in done:
            nodes = sum(v for k, v in r.cpu_ms.items() if k.startswith("node"))
            bad = sum(v for k, v in r.states.items() if k != "Terminated")
            rows.append([variant, f"{r.jobs:,}", f"{r.end_seconds:.2f} s", f"{r.end_rate:,.0f} jobs/s",
                         f"{r.cpu_ms.get('head', 0.0):.2f}", f"{nodes:.2f}", f"{_own(r):.2f}",
                         f"{r.cpu_ms.get('redis', 0.0):.2f}", f"{r.cpu_ms['total']:.2f}", bad])

    def mean(variant: str) -> float:
        return sum(_own(r) for r in rounds[variant]) / len(rounds[variant])

    cost = mean("signed") - mean("unsigned")
    text = (
        f"4 nodes × 4 cores (`oar-celery up`), one-core jobs of `true` through the client API, {os.cpu_count()} "
        "CPUs shared by every process; rounds alternated unsigned (`OAR_SIGNING=off`) and signed, each on a "
        "cluster of its own. CPU per job in milliseconds (from `/proc`).\n\n"
        + markdown_table(["messages", "jobs", "end to end", "end-to-end rate", "head CPU", "nodes CPU",
                          "cluster CPU", "redis CPU", "total CPU", "not Terminated"], rows)
        + f"\n\nSigning's cost: {cost:+.2f} ms of the cluster's own CPU per job (its processes, not the shared "
        "PostgreSQL and Redis servers; mean of the signed rounds minus the mean of the unsigned ones)."
    )
    report("Throughput with signed messages", text, "python -m bench throughput " + " ".join(args), write=write)


def _own(r: Round) -> float:
    """The CPU per job of the cluster's own processes (the servers it shares with others left out)."""
    return sum(v for k, v in r.cpu_ms.items() if k not in ("total", "postgresql", "redis"))


def main(args: list[str], *, write: bool = True) -> None:
    if "--signing" in args:
        signing_cost(args, write=write)
        return
    quick = "--quick" in args
    jobs = QUICK_JOBS if quick else JOBS
    sqlite = "--sqlite" in args
    with BenchCluster(4, 4, sqlite=sqlite) as bench, bench.memory() as sampler:
        rounds = [run_round(bench, jobs, "api"), run_round(bench, jobs, "array")]
    peaks = {name: sampler.mib(name) for name in sampler.leaders}
    database = ("SQLite in the state directory (no `OAR_DATABASE_URL`)" if sqlite
                else "a PostgreSQL database of its own")
    text = (
        f"4 nodes × 4 cores (`oar-celery up`) on {database}, one-core jobs of `true`, {os.cpu_count()} CPUs "
        "shared by every process.\n\n"
        + markdown_table(HEADER, rows_of(rounds))
        + "\n\nCPU per job in milliseconds, by process (from `/proc`, children they reaped included; "
        "postgresql: the backends of the cluster's database; redis: the benchmark's own server):\n\n"
        + cpu_table(rounds)
        + "\n\nPeak memory during the run:\n\n"
        + memory_table(peaks)
    )
    report("Throughput", text, "python -m bench throughput " + " ".join(args), write=write)
