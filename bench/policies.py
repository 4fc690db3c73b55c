"""The scheduler with OAR's policies on: karma fair-share and quotas, next to the same round without them.

Workload of `bench/scheduler.py` spread over 50 users and 5 projects; karma with targets for ten users and
30 days of accounting for all; quotas of 16 busy resources, 8 running jobs and 40 resource-hours per user
and the whole cluster (`ALL`) overall; "held by quotas" counts the jobs they placed later.

``pure_round`` times ``schedule()`` alone; ``db_round`` the database round trip, the policies loaded from
the ``accounting`` table and a quotas file (``python -m bench scheduler``).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from bench.scheduler import NOW, SECURITY_TIME, build_workload
from oar_celery.scheduler import schedule
from oar_celery.scheduler.karma import KarmaPolicy, Usage, set_karma
from oar_celery.scheduler.quotas import Quotas

USERS = 50
PROJECTS = 5
QUOTAS: dict[str, Any] = {
    "quotas": {"*,*,*,*": ["ALL", -1, -1], "*,*,*,/": [16, 8, 40]},
}
USER_TARGETS = "{" + ", ".join(f"u{i} => {5 + i}" for i in range(10)) + "}"


def spread(jobs: list[Any]) -> None:
    """Give the workload's jobs 50 users and 5 projects, round robin."""
    for job in jobs:
        job.user = f"u{job.id % USERS}"
        job.project = f"p{job.id % PROJECTS}"


def usage() -> Usage:
    """A month of past usage, uneven across users."""
    past = Usage()
    for i in range(USERS):
        past.add(f"u{i}", f"p{i % PROJECTS}", "USED", 3600.0 * (i + 1))
        past.add(f"u{i}", f"p{i % PROJECTS}", "ASKED", 7200.0 * (i + 1))
    return past


def pure_round(n_jobs: int, n_resources: int, *, policies: bool, repeats: int = 3) -> dict[str, float | int]:
    """One ``schedule()`` call, with or without karma and quotas; best of ``repeats``."""
    resources, jobs = build_workload(n_jobs, n_resources)
    spread(jobs)
    quotas = Quotas.from_json(QUOTAS, n_resources) if policies else None
    best = best_cpu = float("inf")
    result = None
    for _ in range(repeats):
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        if policies:
            set_karma(KarmaPolicy(window=30 * 86400), {0: usage()}, jobs)
        result = schedule(NOW, resources, [], jobs, security_time=SECURITY_TIME, quotas=quotas)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    assert result is not None
    return {"seconds": best, "cpu_seconds": best_cpu, "placed": len(result.placements), "held": len(result.notes),
            "start_now": sum(1 for p in result.placements if p.start == NOW)}


LINEAR_SIZES = (1_000, 10_000, 50_000)
LINEAR_HEADER = ["waiting jobs", "resources", "policies", "schedule() wall", "its CPU", "CPU per job", "held by quotas"]


def linearity_rows(sizes: tuple[int, ...] = LINEAR_SIZES) -> list[list[object]]:
    """``schedule()`` alone on growing queues (1,000 resources), without and with the policies.

    The workload's users stay 50, so each user's queue grows with the jobs: what
    the quotas cost per job grows with the length of one user's counters.
    """
    found: list[list[object]] = []
    for n_jobs in sizes:
        for on in (False, True):
            pure = pure_round(n_jobs, 1_000, policies=on, repeats=3 if n_jobs <= 10_000 else 1)
            cpu = float(pure["cpu_seconds"])
            found.append([f"{n_jobs:,}", "1,000", "karma + quotas" if on else "none", f"{pure['seconds']:.3f} s",
                          f"{cpu:.3f} s", f"{cpu / n_jobs * 1e6:.0f} µs", f"{pure['held']:,}"])
    return found


if __name__ == "__main__":
    for size in ((1_000, 1_000), (10_000, 1_000), (50_000, 1_000)):
        for on in (False, True):
            print(size, "policies" if on else "none", pure_round(*size, policies=on))


def load_policy_jobs(n_jobs: int, n_resources: int) -> None:
    """The workload as waiting jobs of 50 users and 5 projects, and a month of their accounting."""
    from bench.scheduler import build_workload as workload
    from bench.scheduler_db import refresh_statistics
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib import accounting, admission

    _, jobs = workload(n_jobs, n_resources)
    spread(jobs)
    submissions = [
        admission.Submission(
            user=job.user, command="true", moldables=list(job.moldables), queue="default", directory="/tmp",
            request={"user": job.user, "command": "true", "project": job.project}, types=[], dependencies=[],
            reservation_start=None, commands=["true"],
        )
        for job in jobs
    ]
    day = 86400
    now = int(time.time())
    past = {
        (now // day * day - d * day, now // day * day - d * day + day - 1, f"u{i}", f"p{i % PROJECTS}", "default",
         kind): int(3600 * (i + 1) * (2 if kind == "ASKED" else 1))
        for i in range(USERS) for d in range(30) for kind in ("ASKED", "USED")
    }
    with session_scope() as session:
        for start in range(0, len(submissions), 5_000):
            admission.insert_many(session, submissions[start:start + 5_000], at=time.time() - 60)
        accounting.add_consumptions(session, past)
    refresh_statistics(len(submissions))


def db_round(n_jobs: int, n_resources: int, *, policies: bool, quotas_file: str) -> list[object]:
    """``run_scheduler()`` on a fresh database, with or without karma and quotas: the first and the next round."""
    import json
    from dataclasses import replace

    from bench.localcluster import BenchCluster
    from bench.scheduler_db import add_resources, timed_rounds
    from oar_celery.db.session import dispose_engines
    from oar_celery.head.lib.context import process_context

    with open(quotas_file, "w", encoding="utf-8") as out:
        json.dump(QUOTAS, out)
    with BenchCluster(start=False) as bench:
        bench.init_database()
        context = process_context()
        if policies:
            context = replace(context, settings=context.settings.replace(
                fairsharing_enabled=True, scheduler_fairsharing_user_targets=USER_TARGETS,
                quotas=True, quotas_conf_file=quotas_file,
            ))
        add_resources(bench, n_resources)
        load_policy_jobs(n_jobs, n_resources)
        outcome, wall, cpu, second = timed_rounds(context)
        dispose_engines()
    return [f"{wall:.3f} s", f"{cpu:.3f} s", f"{second:.3f} s", f"{len(outcome.launched):,}"]


SIZES = ((1_000, 1_000), (10_000, 1_000))
HEADER = ["waiting jobs", "resources", "policies", "schedule() alone", "run_scheduler()", "its CPU",
          "next run", "to launch", "held by quotas"]


def rows(sizes: tuple[tuple[int, int], ...] = SIZES) -> list[list[object]]:
    """Each size without, then with, karma and quotas: the pure round and the database round trip."""
    import tempfile

    found: list[list[object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for n_jobs, n_resources in sizes:
            for on in (False, True):
                pure = pure_round(n_jobs, n_resources, policies=on)
                database = db_round(n_jobs, n_resources, policies=on, quotas_file=f"{scratch}/quotas.json")
                found.append([f"{n_jobs:,}", f"{n_resources:,}", "karma + quotas" if on else "none",
                              f"{pure['seconds']:.3f} s", *database[:3], database[3], f"{pure['held']:,}"])
    return found
