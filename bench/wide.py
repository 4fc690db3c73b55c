"""Wide cluster: up to 1,000 emulated nodes of 4 cores, their queues shared out among a few worker processes.

The head sees every node, each with its own queue ``oar.node.<host>`` and its
own signing key; a few worker processes (:mod:`bench.wide_worker`, up to
``NODES_PER_WORKER`` nodes each) consume the queues, so the machine only pays
for the head. The cluster grows through the sizes of ``SIZES`` up to
``--nodes N`` (default 1,000): at each size, the head's CPU per Finaud and per
Sarko cycle (``run_finaud()`` / ``run_sarko()`` timed in this process against
the cluster's database and broker, as Almighty calls them), and the head
worker's CPU for the nodes' answers to one Finaud round (from ``/proc``); at
the largest size, a throughput round, beside a 4-node round of
:mod:`bench.throughput` in the same run.

``python -m bench wide [--nodes N] [--quick]``
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import markdown_table, report
from bench.cpu import process_seconds
from bench.localcluster import BenchCluster, group_pids, rss_kib
from bench.throughput import HEADER, Round, cpu_table, rows_of, run_round

NODES = 1_000
SIZES = (200, 500, 1_000)
CORES = 4
CYCLES = 5
NODES_PER_WORKER = 250
JOBS = 1_000


@dataclass
class Size:
    """What one Finaud and one Sarko cycle cost the head at one cluster size."""

    nodes: int
    finaud_cpu: float
    finaud_wall: float
    sarko_cpu: float
    sarko_wall: float
    answers_cpu: float
    alive: int


def option(args: list[str], name: str, default: int) -> int:
    """``--name N`` or ``--name=N``."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return int(args[i + 1])
        if arg.startswith(name + "="):
            return int(arg.split("=", 1)[1])
    return default


def start_worker(bench: BenchCluster, hosts: list[str]) -> subprocess.Popen[bytes]:
    env = {**bench.env, "OAR_PROCESS_KIND": "node-wide"}
    log = open(bench.state / "wide-worker.out", "ab")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [sys.executable, "-m", "bench.wide_worker", *hosts], env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


def wait_consuming(workers: int, name_prefix: str = "wide@", timeout: float = 120) -> None:
    """Wait until ``workers`` wide workers answer a broadcast ping."""
    from oar_celery.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if sum(name.startswith(name_prefix) for reply in replies for name in reply) >= workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"fewer than {workers} wide workers started")


def time_cycles(function: Callable[[], object], cycles: int) -> tuple[float, float]:
    """Median CPU and wall time of ``function()`` over ``cycles`` calls."""
    cpu, wall = [], []
    for _ in range(cycles):
        c, w = time.process_time(), time.perf_counter()
        function()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
        time.sleep(0.2)
    return statistics.median(cpu), statistics.median(wall)


def head_seconds(bench: BenchCluster) -> float:
    """CPU seconds of the head worker and its pool so far."""
    return sum(map(process_seconds, group_pids(bench.processes()["head"])))


def answers_cost(bench: BenchCluster, context: object, rounds: int = 3, settle: float = 3.0) -> float:
    """Head worker CPU per Finaud round for the nodes' answers: rounds sent minus an idle window as long."""
    from oar_celery.head.finaud import run_finaud

    idle_start = head_seconds(bench)
    time.sleep(settle * rounds)
    idle = head_seconds(bench) - idle_start
    busy_start = head_seconds(bench)
    for _ in range(rounds):
        run_finaud(context)  # type: ignore[arg-type]
        time.sleep(settle)
    busy = head_seconds(bench) - busy_start
    return max(0.0, busy - idle) / rounds


def add_nodes(bench: BenchCluster, first: int, last: int) -> None:
    """Resources and signing keys for ``node<first>`` .. ``node<last>``, through the head once it runs."""
    nodeset = f"node[{first}-{last}]"
    offline = ["--offline"] if not bench.started else []
    result = bench.admin("resources", "add", nodeset, "--cores", str(CORES), *offline, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    keys = bench.admin("keys", "--nodes", nodeset)
    if keys.returncode != 0:
        raise RuntimeError(keys.stderr)


def measure_size(bench: BenchCluster, nodes: int) -> Size:
    from oar_celery.head.finaud import run_finaud
    from oar_celery.head.lib.context import process_context
    from oar_celery.head.sarko import run_sarko

    context = process_context()
    run_finaud(context)  # the first round after a growth pings nodes never pinged: not a steady cycle
    time.sleep(2)
    finaud = time_cycles(lambda: run_finaud(context), CYCLES)
    sarko = time_cycles(lambda: run_sarko(context), CYCLES)
    answers = answers_cost(bench, context)
    alive = bench.query("SELECT count(DISTINCT network_address) FROM resources WHERE state = 'Alive'")[0][0]
    return Size(nodes, *finaud, *sarko, answers, alive)


def four_node_round(jobs: int) -> Round:
    """The same round on ``bench throughput``'s 4 × 4 cluster."""
    with BenchCluster(4, CORES) as bench:
        return run_round(bench, jobs, "api")


def wide_rounds(nodes: int, sizes: list[int], jobs: int) -> tuple[list[Size], Round, float, int]:
    sizes_done: list[Size] = []
    workers: list[subprocess.Popen[bytes]] = []
    with BenchCluster(0, CORES, start=False) as bench:
        bench.init_database()
        try:
            have = 0
            for size in sizes:
                add_nodes(bench, have + 1, size)
                if not bench.started:
                    bench.up()
                for start in range(have + 1, size + 1, NODES_PER_WORKER):
                    hosts = [f"node{i}" for i in range(start, min(size, start + NODES_PER_WORKER - 1) + 1)]
                    workers.append(start_worker(bench, hosts))
                wait_consuming(len(workers))
                have = size
                sizes_done.append(measure_size(bench, size))
                print(f"{size} nodes: {sizes_done[-1]}", flush=True)
            round_ = run_round(bench, jobs, "api")
            worker_mib = max(rss_kib(worker.pid) for worker in workers) / 1024
        finally:
            for worker in workers:
                os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
    return sizes_done, round_, worker_mib, len(workers)


def slope(sizes: list[Size], value: Callable[[Size], float]) -> float:
    """Microseconds per node, between the smallest and the largest size."""
    low, high = sizes[0], sizes[-1]
    return 1e6 * (value(high) - value(low)) / max(1, high.nodes - low.nodes)


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    nodes = option(args, "--nodes", 50 if quick else NODES)
    sizes = [s for s in ((25,) if quick else SIZES) if s < nodes] + [nodes]
    jobs = 200 if quick else JOBS
    four = four_node_round(jobs)
    measured, wide, worker_mib, workers = wide_rounds(nodes, sizes, jobs)
    cycles = markdown_table(
        ["nodes", "Finaud CPU per cycle", "Finaud wall", "Sarko CPU per cycle", "Sarko wall",
         "head worker CPU for one round's answers", "nodes Alive"],
        [[f"{s.nodes:,}", f"{s.finaud_cpu * 1000:.1f} ms", f"{s.finaud_wall * 1000:.0f} ms",
          f"{s.sarko_cpu * 1000:.1f} ms", f"{s.sarko_wall * 1000:.0f} ms", f"{s.answers_cpu * 1000:.0f} ms",
          f"{s.alive:,}"] for s in measured],
    )
    slopes = (
        f"Slopes from {measured[0].nodes:,} to {measured[-1].nodes:,} nodes: Finaud "
        f"{slope(measured, lambda s: s.finaud_cpu):.1f} µs of CPU per node, Sarko "
        f"{slope(measured, lambda s: s.sarko_cpu):.1f} µs, the answers "
        f"{slope(measured, lambda s: s.answers_cpu):.0f} µs."
    )
    ratio = wide.end_rate / four.end_rate if four.end_rate else float("nan")
    text = (
        f"{nodes:,} emulated nodes × {CORES} cores ({nodes * CORES:,} resources), each node with its own queue and "
        f"signing key, served by {workers} worker processes of up to {NODES_PER_WORKER} nodes "
        f"(`bench/wide_worker.py`, largest {worker_mib:.0f} MiB). Cycles timed in-process, median of {CYCLES}; "
        f"the answers' cost is the head worker's CPU over 3 rounds minus an idle window as long.\n\n{cycles}\n\n"
        f"{slopes}\n\nThroughput, {jobs:,} one-core jobs, on the 4 × 4 cluster of `bench throughput` and on the "
        f"wide one, in this run (wide at {ratio:.0%} of 4 nodes):\n\n"
        + markdown_table(["cluster", *HEADER], [["4 × 4", *rows_of([four])[0]],
                                                 [f"{nodes:,} × {CORES}", *rows_of([wide])[0]]])
        + "\n\nCPU per job (ms), 4 × 4 then wide (the wide workers are not in the table):\n\n"
        + cpu_table([four, wide])
    )
    report("Wide cluster", text, "python -m bench wide " + " ".join(args), write=write)
