"""History: throughput rounds on a database already holding 100,000 finished jobs.

Flux saw its throughput fall to a third as finished jobs piled up; here every
query a cycle runs must stay bounded by the live jobs. The history is
bulk-inserted with SQL (``generate_series``): jobs ``Terminated`` with their
moldable, resource request, freed assignment and five state log entries each.
"""

from __future__ import annotations

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster
from bench.throughput import HEADER, memory_table, rows_of, run_round

HISTORY = 100_000
ROUNDS = 5
JOBS = 2_000  # the throughput run, repeated (issue 6)
QUICK = (10_000, 2, 100)

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
_SEQUENCES = [
    ("jobs", "job_id"), ("moldable_job_descriptions", "moldable_id"),
    ("job_resource_groups", "res_group_id"), ("job_state_logs", "job_state_log_id"),
]


def fill_history(bench: BenchCluster, jobs: int) -> None:
    """Bulk-insert ``jobs`` finished jobs, before the cluster starts."""
    import time

    t0 = time.time() - 30 * 86400
    for statement in _FILL:
        bench.execute(statement, n=jobs, t0=t0)
    for table, column in _SEQUENCES:
        sequence = f"pg_get_serial_sequence('{table}', '{column}')"
        bench.execute(f"SELECT setval({sequence}, (SELECT max({column}) FROM {table}))")
    bench.execute("ANALYZE")


def history_cluster(history: int) -> BenchCluster:
    bench = BenchCluster(4, 4, start=False)
    bench.init_database()
    fill_history(bench, history)
    bench.up()
    return bench


def main(args: list[str], *, write: bool = True) -> None:
    history, rounds, jobs = QUICK if "--quick" in args else (HISTORY, ROUNDS, JOBS)
    with history_cluster(history) as bench, bench.memory() as sampler:
        results = [run_round(bench, jobs, "api") for _ in range(rounds)]
    peaks = {name: sampler.mib(name) for name in sampler.leaders}
    first, last = results[0].end_rate, results[-1].end_rate
    rows = rows_of(results)
    for number, row in enumerate(rows, start=1):
        row[0] = f"round {number} (api)"
    text = (
        f"{history:,} finished jobs in the database before the first round; {rounds} rounds of {jobs:,} jobs "
        f"on 4 × 4. Last round's end-to-end rate: {last / first * 100:.0f} % of the first's.\n\n"
        + markdown_table(HEADER, rows) + "\n\nPeak memory:\n\n" + memory_table(peaks)
    )
    report("History", text, "python -m bench history " + " ".join(args), write=write)
