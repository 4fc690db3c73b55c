"""History: throughput rounds on a database already holding 1,000,000 finished jobs, against a fresh one.

Flux saw its throughput fall to a third as finished jobs piled up; here every
query a cycle runs must stay bounded by the live jobs. The history is
bulk-inserted with SQL (``generate_series``): jobs ``Terminated`` with their
moldable, resource request, freed assignment and five state log entries each.
The tables' indexes are dropped during the fill and built again after it
(one sort per index instead of a million B-tree insertions), so the tables
end as ``oar-celery db init`` makes them.

In the same run, on the same machine: rounds on a fresh database, then the
same rounds with the history; then, the history cluster busy with some
current jobs, ``oarstat`` (the current jobs, as a user types it) and the
head's metrics endpoint (an HTTP scrape in Prometheus's text format) timed.

Options: ``--jobs=N`` (finished jobs in history), ``--rounds=N``,
``--round-jobs=N``, ``--quick`` (an option and its value in one argument:
a separate value would read as the name of a benchmark).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import time

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster, command
from bench.throughput import HEADER, Round, cpu_table, memory_table, rows_of, run_round

HISTORY = 1_000_000
ROUNDS = 3
JOBS = 2_000  # the throughput run, repeated (issue 6)
QUICK = (10_000, 2, 100)
#: Jobs in the system while ``oarstat`` and the scrape are timed: 16 running (every core), the rest waiting.
CURRENT = 100
TIMINGS = 7

_FILL = [
    """INSERT INTO jobs (job_id, array_id, array_index, initial_request, job_type, state, reservation, message,
        scheduler_info, job_user, project, job_group, command, exit_code, queue_name, launching_directory,
        submission_time, start_time, stop_time, assigned_moldable_job, checkpoint, checkpoint_signal,
        resubmit_job_id, suspended, suspended_time)
       SELECT g, g, 1, 'oarsub true', 'PASSIVE', 'Terminated', 'None', 'the job exited with status 0', '',
        'bench', 'default', '', 'true', 0, 'default', '/tmp', :t0 + g, :t0 + g + 1, :t0 + g + 2, g, 0, 12, 0,
        'NO', 0 FROM generate_series(1, :n) AS g""",
    """INSERT INTO moldable_job_descriptions (moldable_id, moldable_job_id, moldable_walltime, moldable_index)
       SELECT g, g, 7200, 'CURRENT' FROM generate_series(1, :n) AS g""",
    """INSERT INTO job_resource_groups (res_group_id, res_group_moldable_id, res_group_property, res_group_index)
       SELECT g, g, NULL, 'CURRENT' FROM generate_series(1, :n) AS g""",
    """INSERT INTO job_resource_descriptions (res_job_group_id, res_job_resource_type, res_job_order,
        res_job_value, res_job_index) SELECT g, 'resource_id', 0, 1, 'CURRENT' FROM generate_series(1, :n) AS g""",
    """INSERT INTO assigned_resources (moldable_job_id, resource_id, assigned_resource_index)
       SELECT g, 1 + g % 16, 'LOG' FROM generate_series(1, :n) AS g""",
    """INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)
       SELECT g, s.state, :t0 + g + s.i * 0.2, CASE WHEN s.i = 4 THEN 0 ELSE :t0 + g + s.i * 0.2 + 0.2 END
       FROM generate_series(1, :n) AS g,
            (VALUES (0, 'Waiting'), (1, 'toLaunch'), (2, 'Launching'), (3, 'Running'), (4, 'Terminated'))
            AS s(i, state)""",
]
_TABLES = ("jobs", "moldable_job_descriptions", "job_resource_groups", "job_resource_descriptions",
           "assigned_resources", "job_state_logs")
_SEQUENCES = [
    ("jobs", "job_id"), ("moldable_job_descriptions", "moldable_id"),
    ("job_resource_groups", "res_group_id"), ("job_state_logs", "job_state_log_id"),
]


def secondary_indexes(bench: BenchCluster) -> list[tuple[str, str]]:
    """The filled tables' indexes that no constraint owns (name, ``CREATE INDEX`` statement)."""
    rows = bench.query(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        tables=list(_TABLES),
    )
    return [(str(name), str(definition)) for name, definition in rows]


def fill_history(bench: BenchCluster, jobs: int) -> float:
    """Bulk-insert ``jobs`` finished jobs, before the cluster starts; the seconds it took."""
    started = time.perf_counter()
    t0 = time.time() - 30 * 86400
    indexes = secondary_indexes(bench)
    for name, _ in indexes:
        bench.execute(f'DROP INDEX "{name}"')
    for statement in _FILL:
        bench.execute(statement, n=jobs, t0=t0)
    for _, definition in indexes:
        bench.execute(definition)
    for table, column in _SEQUENCES:
        sequence = f"pg_get_serial_sequence('{table}', '{column}')"
        bench.execute(f"SELECT setval({sequence}, (SELECT max({column}) FROM {table}))")
    bench.execute("ANALYZE")
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def history_cluster(history: int, **overrides: str) -> tuple[BenchCluster, float]:
    """A 4 × 4 cluster started on a database holding ``history`` finished jobs; the fill's seconds."""
    bench = BenchCluster(4, 4, start=False, **overrides)
    bench.init_database()
    seconds = fill_history(bench, history) if history else 0.0
    bench.up()
    return bench, seconds


def option(args: list[str], name: str, default: int) -> int:
    """``--name N`` or ``--name=N`` among the arguments (``1_000_000`` and ``1e6`` accepted)."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return int(float(args[index + 1].replace("_", "")))
        if arg.startswith(name + "="):
            return int(float(arg.split("=", 1)[1].replace("_", "")))
    return default


def sizes(args: list[str]) -> tuple[int, int, int]:
    """History, rounds and jobs per round, from ``--quick`` and the options."""
    history, rounds, jobs = QUICK if "--quick" in args else (HISTORY, ROUNDS, JOBS)
    return option(args, "--jobs", history), option(args, "--rounds", rounds), option(args, "--round-jobs", jobs)


def median_seconds(run: object, times: int = TIMINGS) -> tuple[float, float]:
    """Median and max wall time of ``times`` calls of ``run``."""
    seen = []
    for _ in range(times):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        seen.append(time.perf_counter() - started)
    return statistics.median(seen), max(seen)


def time_oarstat(bench: BenchCluster) -> tuple[float, float, int]:
    """``oarstat`` (current jobs) as a user runs it: median and max seconds, and the lines it printed."""
    lines = [0]

    def run() -> None:
        done = subprocess.run([command("oarstat")], env=bench.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"oarstat failed: {done.stderr}")
        lines[0] = len(done.stdout.splitlines())

    median, worst = median_seconds(run)
    return median, worst, lines[0]


def time_scrape(port: int, repeats: int = TIMINGS) -> tuple[float, float, float, int]:
    """The head's metrics endpoint: one scrape, then median and max of ``repeats`` more; samples per scrape."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/metrics"
    size = [0]

    def run() -> None:
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = answer.read().decode()
        size[0] = sum(1 for line in body.splitlines() if line and not line.startswith("#"))

    started = time.perf_counter()
    run()
    first = time.perf_counter() - started
    if not repeats:
        return first, first, first, size[0]
    median, worst = median_seconds(run, repeats)
    return first, median, worst, size[0]


def wait_metrics(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the head's metrics endpoint did not open on port {port}")


def submit_current(bench: BenchCluster, jobs: int) -> list[int]:
    """``jobs`` long jobs: as many run as there are cores, the others wait."""
    from oar_celery.client import api

    base = {"command": "sleep 3600", "resources": ["/resource_id=1"], "directory": str(bench.workdir)}
    ids: list[int] = []
    for job_ids in api.submit_many([dict(base) for _ in range(jobs)]):
        if isinstance(job_ids, Exception):
            raise job_ids
        ids.extend(job_ids)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = bench.query("SELECT count(*) FROM jobs WHERE job_id >= :a AND state = 'Running'", a=min(ids))[0][0]
        if running >= min(jobs, bench.nodes * bench.cores):
            break
        time.sleep(0.2)
    return ids


def rounds_on(history: int, rounds: int, jobs: int) -> tuple[list[Round], dict[str, float], float, list[list[str]]]:
    """Throughput rounds on a cluster with ``history`` finished jobs; then (with history) oarstat and the scrape."""
    port = free_port()
    bench, fill = history_cluster(history, OAR_METRICS_PORT=str(port))
    timings: list[list[str]] = []
    with bench, bench.memory() as sampler:
        if history:
            wait_metrics(port)
            first, _, _, _ = time_scrape(port, repeats=0)
            timings.append(["metrics scrape: the first, the head just started", f"{first * 1000:.0f} ms", "",
                            "< 0.1 s"])
        results = [run_round(bench, jobs, "api") for _ in range(rounds)]
        if history:
            submit_current(bench, CURRENT)
            median, worst, lines = time_oarstat(bench)
            timings.append([f"`oarstat` ({CURRENT} current jobs, {lines} lines), median of {TIMINGS}",
                            f"{median * 1000:.0f} ms", f"{worst * 1000:.0f} ms", "< 0.5 s"])
            first, median, worst, samples = time_scrape(port)
            timings.append([f"metrics scrape (`GET /metrics`, {samples} samples): the first after the rounds, "
                            f"which folds in their {rounds * jobs + CURRENT:,} jobs", f"{first * 1000:.0f} ms", "",
                            "< 0.1 s"])
            timings.append([f"metrics scrape, median of {TIMINGS}", f"{median * 1000:.1f} ms",
                            f"{worst * 1000:.1f} ms", "< 0.1 s"])
    peaks = {name: sampler.mib(name) for name in sampler.leaders}
    return results, peaks, fill, timings


def mean_rate(results: list[Round]) -> float:
    return statistics.mean(r.end_rate for r in results)


def main(args: list[str], *, write: bool = True) -> None:
    history, rounds, jobs = sizes(args)
    fresh, fresh_peaks, _, _ = rounds_on(0, rounds, jobs)
    old, old_peaks, fill, timings = rounds_on(history, rounds, jobs)
    rows = []
    for label, results in (("fresh", fresh), (f"{history:,} finished", old)):
        for number, row in enumerate(rows_of(results), start=1):
            row[0] = f"{label}, round {number} (api)"
            rows.append(row)
    for label, results in (("fresh", fresh), ("history", old)):
        for r in results:
            r.mode = label
    ratio = mean_rate(old) / mean_rate(fresh) * 100
    text = (
        f"Rounds of {jobs:,} jobs on 4 × 4: {rounds} on a fresh database, then {rounds} on one holding "
        f"{history:,} finished jobs (filled in {fill:.0f} s). Mean end-to-end rate with the history: "
        f"{ratio:.0f} % of the fresh one's ({mean_rate(old):.0f} against {mean_rate(fresh):.0f} jobs/s); "
        f"last round with the history at {old[-1].end_rate / old[0].end_rate * 100:.0f} % of its first.\n\n"
        + markdown_table(HEADER, rows)
        + "\n\nCPU per job in milliseconds, by process:\n\n" + cpu_table([*fresh, *old])
        + "\n\nWith the history, and the cluster holding current jobs:\n\n"
        + markdown_table(["what", "median", "max", "target"], timings)
        + "\n\nPeak memory (RSS of each process group), fresh:\n\n" + memory_table(fresh_peaks)
        + "\n\nwith the history:\n\n" + memory_table(old_peaks)
    )
    report("History", text, "python -m bench history " + " ".join(args), write=write)
