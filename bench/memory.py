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
"""

from __future__ import annotations

from bench.common import markdown_table, report
from bench.history import HISTORY, history_cluster, option
from bench.localcluster import group_pids
from bench.throughput import run_round


def main(args: list[str], *, write: bool = True) -> None:
    quick = "--quick" in args
    history, jobs = (10_000, 200) if quick else (HISTORY, 2_000)
    history = option(args, "--jobs", history)
    bench, _ = history_cluster(history)
    with bench, bench.memory() as sampler:
        processes = {name: len(group_pids(pid)) for name, pid in sampler.leaders.items()}
        result = run_round(bench, jobs, "api")
    rows = [
        [name, processes[name], f"{sampler.pss_mib(name):.0f} MiB", f"{sampler.mib(name):.0f} MiB", target]
        for name, target in (("head", "< 300 MB"), ("node1", "< 80 MB"), ("beat", "")) if name in sampler.peaks
    ]
    text = (
        f"{history:,} finished jobs in history, {result.jobs:,} jobs run ({result.end_rate:.0f} jobs/s).\n\n"
        + markdown_table(["process", "processes in group", "peak PSS (group)", "peak RSS (sum)", "target"], rows)
    )
    report("Memory", text, "python -m bench memory " + " ".join(args), write=write)
