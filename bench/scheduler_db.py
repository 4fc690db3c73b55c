"""The scheduler with its database round trip, next to the pure benchmark of ``bench/scheduler.py``.

``bench/scheduler.py`` (the scheduler engineers') times ``schedule()`` alone;
this module runs it from the harness, then loads the same workload
(:func:`bench.scheduler.build_workload`) into PostgreSQL as waiting jobs and
times ``oar_celery.head.scheduling.run_scheduler()``: the loads, the
placement and the writes (``toLaunch``, assigned resources, the Gantt).
Also the Runner's ``launch_jobs()`` that follows, without a cluster (the
launch messages go to Redis db 13 and nobody reads them).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster

SIZES = [(1_000, 1_000), (10_000, 1_000), (2_000, 16)]
QUICK_SIZES = [(1_000, 1_000), (2_000, 16)]


def load_jobs(n_jobs: int, n_resources: int) -> None:
    """The pure benchmark's waiting jobs, inserted with the head's own bulk admission."""
    from bench.scheduler import build_workload
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import admission

    _, jobs = build_workload(n_jobs, n_resources)
    submissions = [
        admission.Submission(
            user="bench", command="true", moldables=list(job.moldables), queue="default", directory="/tmp",
            request={}, types=[], dependencies=[], reservation_start=None, commands=["true"],
        )
        for job in jobs
    ]
    with session_scope() as session:
        for start in range(0, len(submissions), 5_000):
            admission.insert_many(session, submissions[start:start + 5_000], at=time.time() - 60)
    refresh_statistics(len(submissions))


def refresh_statistics(inserted: int) -> None:
    """The planner's statistics after the burst, as the head's submission path refreshes them.

    The jobs are inserted with the bulk admission directly, which does not ask
    for the refresh a burst of ``oarsub`` would (``oar_celery.db.statistics``);
    without it the round's joins are planned for empty tables.
    """
    from oar_celery.db import statistics
    from oar_celery.db.session import get_engine

    if get_engine().dialect.name == "postgresql":
        statistics.analyze(inserted)


def add_resources(bench: BenchCluster, n_resources: int) -> None:
    """Nodes of 2 cpus × 2 cores named like the workload's (``node-1``...).

    Written in-process with the head's own function (the one behind
    ``oar-celery resources add``): that command now asks a running head, and
    the benchmark's database has none; the benchmark owns this database, as
    the head does.
    """
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.resources import add_resources as insert_resources
    from oar_celery.head.lib.resources import expand_nodeset

    del bench  # the cluster's environment is already this process's (``BenchCluster`` adopts it)
    nodes = max(1, n_resources // 4)
    cpus, cores = (2, 2) if n_resources >= 4 else (1, n_resources)
    with session_scope() as session:
        insert_resources(session, expand_nodeset(f"node-[1-{nodes}]"), cpus=cpus, cores=cores)


def timed_rounds(context: Any) -> tuple[Any, float, float, float]:
    """Two rounds: the first's outcome, wall and CPU time, and the second's wall time."""
    from oar_celery.head.scheduling import run_scheduler

    wall, cpu = time.perf_counter(), time.process_time()
    outcome = run_scheduler(context)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    second = time.perf_counter()
    run_scheduler(context)
    return outcome, wall, cpu, time.perf_counter() - second


def measure(n_jobs: int, n_resources: int) -> list[object]:
    from oar_celery.head.lib.context import process_context
    from oar_celery.head.runner import launch_jobs

    with BenchCluster(start=False) as bench:
        bench.init_database()
        context = process_context()
        add_resources(bench, n_resources)
        load_jobs(n_jobs, n_resources)
        outcome, wall, cpu, second = timed_rounds(context)
        launch = time.perf_counter()
        launch_jobs()
        launch = time.perf_counter() - launch
        from oar_celery.db.session import dispose_engines

        dispose_engines()
    return [
        f"{n_jobs:,}", f"{n_resources:,}", f"{wall:.3f} s", f"{cpu:.3f} s", f"{second:.3f} s",
        f"{len(outcome.launched):,}", f"{outcome.predicted:,}", f"{launch:.3f} s",
    ]


HEADER = [
    "waiting jobs", "resources", "run_scheduler()", "its CPU", "next run (nothing starts)", "to launch",
    "predicted", "Runner launch_jobs()",
]


def main(args: list[str], *, write: bool = True) -> None:
    from bench import scheduler as pure

    quick = "--quick" in args
    if "--db-only" not in args:  # --db-only: the round trip alone, the pure table being already recorded
        pure.main((["--quick"] if quick else []) + ([] if write else ["--no-write"]))
    rows = [measure(n, r) for n, r in (QUICK_SIZES if quick else SIZES)]
    text = (
        "Workload of `bench/scheduler.py` in PostgreSQL (fresh database), timed in-process; the second run "
        "re-places the jobs that did not start.\n\n" + markdown_table(HEADER, rows)
    )
    report("Scheduler with its database round trip", text, "python -m bench scheduler " + " ".join(args), write=write)
    if "--no-policies" not in args:
        from bench import policies

        sizes = policies.SIZES[:1] if quick else policies.SIZES
        text = (policies.__doc__ or "").split("\n\n")[1].replace("\n", " ") + "\n\n" + markdown_table(
            policies.HEADER, policies.rows(sizes))
        if not quick:
            text += ("\n\n`schedule()` alone on growing queues, best of 3 up to 10,000 jobs, one run above:\n\n"
                     + markdown_table(policies.LINEAR_HEADER, policies.linearity_rows()))
        report("Scheduler with karma and quotas", text, "python -m bench scheduler " + " ".join(args), write=write)
