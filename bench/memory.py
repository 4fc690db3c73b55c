"""Memory: peak memory of the head worker, one node worker and beat.

Sampled from ``/proc`` during a throughput round of 2,000 jobs on a database
holding 1,000,000 finished jobs (``--jobs N`` for another size), which is the
case the issue bounds (head under 300 MB, node worker under 80 MB). The head's
figure is its whole process group (the main process and its prefork pool
children), counted twice: the sum of their RSS, as ``top`` adds them up (a
page a child shares with its parent counts in both), and the sum of their PSS
(each page counted once, shared ones split between the processes that map
them), which is what the group really holds and the figure held to the
target.

``--metrics``: the head's Prometheus endpoint on, as ``oar-celery up`` starts
it by default (the harness's clusters start it only when asked), and
scraped every second during the round: what the endpoint costs is counted
with the head's main process, which serves it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import markdown_table, report
from bench.history import HISTORY, free_port, history_cluster, option, time_scrape, wait_metrics
from bench.localcluster import group_pids
from bench.throughput import run_round


@contextmanager
def scraping(port: int | None, period: float = 1.0) -> Iterator[list[int]]:
    """Scrape the head's metrics endpoint every ``period`` seconds meanwhile (none without a port); the scrapes."""
    done: list[int] = []
    if port is None:
        yield done
        return
    stop = threading.Event()
    endpoint = port

    def loop() -> None:
        while not stop.wait(period):
            time_scrape(endpoint, repeats=0)
            done.append(1)

    wait_metrics(port)
    time_scrape(port, repeats=0)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join()


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    history, jobs = (10_000, 200) if quick else (HISTORY, 2_000)
    history = option(args, "--jobs", history)
    port = free_port() if "--metrics" in args else None
    bench, _ = history_cluster(history, **({"OAR_METRICS_PORT": str(port)} if port else {}))
    with bench, bench.memory() as sampler:
        processes = {name: len(group_pids(pid)) for name, pid in sampler.leaders.items()}
        with scraping(port) as scrapes:
            result = run_round(bench, jobs, "api")
    rows = [
        [name, processes[name], f"{sampler.pss_mib(name):.0f} MiB", f"{sampler.mib(name):.0f} MiB", target]
        for name, target in (("head", "< 300 MB"), ("node1", "< 80 MB"), ("beat", "")) if name in sampler.peaks
    ]
    endpoint = f", the metrics endpoint on ({len(scrapes) + 1} scrapes)" if port else ", the metrics endpoint off"
    text = (
        f"{history:,} finished jobs in history, {result.jobs:,} jobs run ({result.end_rate:.0f} jobs/s){endpoint}.\n\n"
        + markdown_table(["process", "processes in group", "peak PSS (group)", "peak RSS (sum)", "target"], rows)
    )
    report("Memory", text, "python -m bench memory " + " ".join(args), write=write)
