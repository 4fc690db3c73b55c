"""Wide cluster: 200 emulated nodes of 4 cores, their queues served by one shared worker.

The head sees 200 nodes, each with its own queue ``oar.node.<host>``; one
worker process (:mod:`bench.wide_worker`) consumes them all, so the machine
only pays for the head. Measured: the head's CPU per Finaud and per Sarko
cycle (``run_finaud()`` / ``run_sarko()`` timed in this process against the
cluster's database and broker, as Almighty calls them), then a throughput round.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster, rss_kib
from bench.throughput import HEADER, rows_of, run_round

NODES = 200
CORES = 4
CYCLES = 5


def start_worker(bench: BenchCluster, hosts: list[str]) -> subprocess.Popen[bytes]:
    env = {**bench.env, "OAR_PROCESS_KIND": "node-wide"}
    log = open(bench.state / "wide-worker.out", "ab")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [sys.executable, "-m", "bench.wide_worker", *hosts], env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


def wait_consuming(name_prefix: str = "wide@", timeout: float = 60) -> None:
    from oar_celery.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(name.startswith(name_prefix) for reply in app.control.ping(timeout=1.0) or [] for name in reply):
            return
        time.sleep(0.5)
    raise RuntimeError("the wide worker did not start")


def time_cycles(function: object, cycles: int) -> tuple[float, float]:
    """Median CPU and wall time of ``function()`` over ``cycles`` calls."""
    cpu, wall = [], []
    for _ in range(cycles):
        c, w = time.process_time(), time.perf_counter()
        function()  # type: ignore[operator]
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        time.sleep(0.2)
    return statistics.median(cpu), statistics.median(wall)


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    nodes, jobs = (50, 200) if quick else (NODES, 1_000)
    hosts = [f"node{i}" for i in range(1, nodes + 1)]
    with BenchCluster(0, CORES, start=False) as bench:
        bench.init_database()
        result = bench.admin("resources", "add", f"node[1-{nodes}]", "--cores", str(CORES))
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        bench.up()
        worker = start_worker(bench, hosts)
        try:
            wait_consuming()
            from oar_celery.head.finaud import run_finaud
            from oar_celery.head.lib.context import process_context
            from oar_celery.head.sarko import run_sarko

            context = process_context()
            finaud = time_cycles(lambda: run_finaud(context), CYCLES)
            sarko = time_cycles(lambda: run_sarko(context), CYCLES)
            round_ = run_round(bench, jobs, "api")
            worker_mib = rss_kib(worker.pid) / 1024
            alive = bench.query("SELECT count(DISTINCT network_address) FROM resources WHERE state = 'Alive'")[0][0]
        finally:
            import os
            import signal

            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    cycles = markdown_table(
        ["module (in-process, as Almighty runs it)", "CPU per cycle", "wall per cycle"],
        [["Finaud (`run_finaud()`)", f"{finaud[0] * 1000:.0f} ms", f"{finaud[1] * 1000:.0f} ms"],
         ["Sarko (`run_sarko()`)", f"{sarko[0] * 1000:.0f} ms", f"{sarko[1] * 1000:.0f} ms"]],
    )
    text = (
        f"{nodes} emulated nodes × {CORES} cores ({nodes * CORES} resources), each node with its own queue, all "
        f"served by one worker process (`bench/wide_worker.py`, {worker_mib:.0f} MiB); {alive} nodes still "
        f"Alive at the end. Median of {CYCLES} cycles.\n\n{cycles}\n\n" + markdown_table(HEADER, rows_of([round_]))
    )
    report("Wide cluster", text, "python -m bench wide " + " ".join(args), write=write)
