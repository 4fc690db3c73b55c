"""The SQL text of the store's PostgreSQL statements: the only place where SQL is written out
(with the accounting's CTEs, :func:`oar_celery.head.lib.accounting.adding_usage`).

Each statement does in one round trip what the generic store does in
several: data-modifying CTEs see one snapshot, so the log that a move
closes and the entry it opens cannot step on each other. The big ones are
prepared once per connection (:mod:`oar_celery.db.prepared`).
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import TextClause, text

from oar_celery.db.models import Job
from oar_celery.db.prepared import Prepared
from oar_celery.head.lib.accounting import adding_usage

#: The columns of ``jobs`` a launch spec needs (``launch.launch_spec``; its walltime comes from the moldable):
#: the row :meth:`Store.start_now` returns.
LAUNCH_COLUMNS = (
    "job_id", "job_user", "command", "launching_directory", "job_name", "stdout_file", "stderr_file",
    "job_env", "array_id", "array_index", "checkpoint", "checkpoint_signal", "project",
    "job_type", "reservation",
)


#: PostgreSQL: a data-modifying CTE closing, at ``:at``, the open state log entries of the jobs in a
#: ``moved`` CTE (``job_id``, ``assigned_moldable_job``). Every statement that changes states uses it.
CLOSE_LOG_ENTRIES = (
    "closed AS (UPDATE job_state_logs SET date_stop = :at"
    " WHERE date_stop = 0 AND job_id IN (SELECT job_id FROM moved))"
)


def release_cte(only: str = "") -> str:
    """PostgreSQL: a CTE freeing the resources of the jobs in ``moved`` (``only``: a condition on its rows)."""
    condition = f" WHERE {only}" if only else ""
    return (
        "released AS (UPDATE assigned_resources SET assigned_resource_index = 'LOG'"
        " WHERE assigned_resource_index = 'CURRENT'"
        f" AND moldable_job_id IN (SELECT assigned_moldable_job FROM moved{condition}))"
    )


#: The SQL type of a column given per job, and what a job's value sets (``exit_code``: ``None`` keeps it).
PER_JOB = {
    "message": ("text[]", "each.message"),
    "exit_code": ("integer[]", "COALESCE(each.exit_code, jobs.exit_code)"),
    "assigned_moldable_job": ("integer[]", "each.assigned_moldable_job"),
    "start_time": ("double precision[]", "each.start_time"),
}


@lru_cache(maxsize=64)
def move_statement(columns: tuple[str, ...], per_job: tuple[str, ...], release: bool) -> TextClause:
    """``UPDATE jobs`` with data-modifying CTEs: the state log closes the old entries and opens new ones.

    All parts see the same snapshot, so the log update cannot touch the rows
    the insert adds.
    """
    unknown = [name for name in columns if name not in Job.__table__.c or name == "state"]
    unknown += [name for name in per_job if name not in PER_JOB]
    if unknown:
        raise ValueError(f"not a column a state change may set: {', '.join(unknown)}")
    sets = ["state = :new_state", *(f"{c} = :{c}" for c in columns), *(f"{c} = {PER_JOB[c][1]}" for c in per_job)]
    arrays = ", ".join(["CAST(:job_ids AS integer[])", *(f"CAST(:{c}_each AS {PER_JOB[c][0]})" for c in per_job)])
    parts = [
        f"each AS (SELECT * FROM unnest({arrays}) AS each({', '.join(['job_id', *per_job])}))",
        f"moved AS (UPDATE jobs SET {', '.join(sets)} FROM each WHERE jobs.job_id = each.job_id"
        " AND jobs.state = ANY(CAST(:expected AS text[])) RETURNING jobs.job_id, jobs.assigned_moldable_job)",
        CLOSE_LOG_ENTRIES,
        "opened AS (INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)"
        " SELECT job_id, :new_state, :at, 0 FROM moved)",
    ]
    if release:
        parts.append(release_cte())
    return text(f"WITH {', '.join(parts)} SELECT job_id FROM moved")


#: The start time a report batch gives a job: the batch's when a ``Launching`` job's command ran, else its own.
_START = "CASE WHEN old.state = 'Launching' AND each.ran THEN :at ELSE jobs.start_time END"

#: PostgreSQL: a whole batch in one statement. ``Running`` rows move ``Launching`` jobs; end rows move
#: started jobs to ``Terminated`` or ``Error``, through ``Running`` (logged, start time set) for a job
#: whose end report came with or before its start report and whose command ran. ``old`` locks the rows
#: and gives their state before the move, which the update checks again. An ended job that started is
#: flagged ``accounted`` on the way and its usage added to ``accounting`` (:func:`.accounting.account`).
#: A row with a host applies only if its job holds a resource on that host or runs there as a cosystem
#: or deploy job (:func:`.trust.off_their_hosts`, the same test); the others come back as ``foreign`` rows.
APPLY_REPORTS = Prepared("oar_apply_reports", f"""
WITH each AS (
  SELECT * FROM unnest(CAST(:job_ids AS integer[]), CAST(:states AS text[]), CAST(:ran AS boolean[]),
                       CAST(:exit_codes AS integer[]), CAST(:messages AS text[]), CAST(:hosts AS text[]))
    AS each(job_id, new_state, ran, exit_code, message, host)
), foreign_claims AS (
  SELECT each.job_id, each.host FROM each LEFT JOIN jobs ON jobs.job_id = each.job_id
  WHERE each.host IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM assigned_resources ar JOIN resources r ON r.resource_id = ar.resource_id
                    WHERE ar.moldable_job_id = jobs.assigned_moldable_job AND r.network_address = each.host)
    AND NOT EXISTS (SELECT 1 FROM job_types t WHERE t.job_id = each.job_id AND t.types_index = 'CURRENT'
                    AND ((split_part(t.type, '=', 1) = 'cosystem' AND each.host = :cosystem_host)
                         OR (split_part(t.type, '=', 1) = 'deploy' AND each.host = :deploy_host)))
), old AS (
  SELECT jobs.job_id, jobs.state, jobs.accounted FROM jobs JOIN each ON each.job_id = jobs.job_id
  WHERE CASE WHEN each.new_state = 'Running' THEN jobs.state = 'Launching'
             ELSE jobs.state = ANY(CAST(:started AS text[])) END
    AND each.job_id NOT IN (SELECT job_id FROM foreign_claims)
  FOR UPDATE OF jobs
), moved AS (
  UPDATE jobs SET
    state = each.new_state,
    start_time = {_START},
    stop_time = CASE WHEN each.new_state = 'Running' THEN jobs.stop_time ELSE :at END,
    exit_code = COALESCE(each.exit_code, jobs.exit_code),
    message = COALESCE(each.message, jobs.message),
    accounted = CASE WHEN each.new_state <> 'Running' AND jobs.accounted = 'NO' AND {_START} > 1
                          AND :at >= {_START} THEN 'YES' ELSE jobs.accounted END
  FROM each JOIN old ON old.job_id = each.job_id
  WHERE jobs.job_id = each.job_id AND jobs.state = old.state
  RETURNING jobs.job_id, old.state AS old_state, each.new_state, each.ran, jobs.assigned_moldable_job, jobs.notify,
    old.accounted <> jobs.accounted AS flagged, jobs.job_user, jobs.project, jobs.queue_name, jobs.start_time,
    jobs.stop_time
), {CLOSE_LOG_ENTRIES}, opened AS (
  INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)
  SELECT job_id, 'Running', :at, :at FROM moved WHERE old_state = 'Launching' AND ran AND new_state <> 'Running'
  UNION ALL SELECT job_id, new_state, :at, 0 FROM moved
), {release_cte("new_state <> 'Running'")}, fragged AS (
  UPDATE frag_jobs SET frag_state = 'FRAGGED'
  WHERE frag_state IN ('LEON', 'TIMER_ARMED') AND frag_id_job IN (SELECT job_id FROM moved WHERE new_state <> 'Running')
), flagged AS (SELECT * FROM moved WHERE flagged), {adding_usage("flagged")}
SELECT job_id, old_state, new_state, ran, notify, NULL AS foreign_host FROM moved
UNION ALL SELECT job_id, NULL, NULL, NULL, NULL, host FROM foreign_claims
""", [
    ("job_ids", "integer[]"), ("states", "text[]"), ("ran", "boolean[]"), ("exit_codes", "integer[]"),
    ("messages", "text[]"), ("hosts", "text[]"), ("started", "text[]"), ("at", "double precision"),
    ("window", "bigint"), ("cosystem_host", "text"), ("deploy_host", "text"),
])


#: PostgreSQL: the jobs to start now go from ``Waiting`` to ``Launching`` (``toLaunch`` logged on the way)
#: with their moldable and resources, and their predictions are deleted: one statement.
START_AT_ONCE = Prepared("oar_start_at_once", f"""
WITH each AS (
  SELECT * FROM unnest(CAST(:job_ids AS integer[]), CAST(:moldables AS integer[])) AS each(job_id, moldable)
), picked AS (
  SELECT * FROM unnest(CAST(:picked_moldables AS integer[]), CAST(:picked_resources AS integer[]))
    AS picked(moldable, resource_id)
), moved AS (
  UPDATE jobs SET state = 'Launching', assigned_moldable_job = each.moldable, scheduler_info = ''
  FROM each WHERE jobs.job_id = each.job_id AND jobs.state = 'Waiting'
  RETURNING jobs.assigned_moldable_job, {", ".join(f"jobs.{c}" for c in LAUNCH_COLUMNS)}
), {CLOSE_LOG_ENTRIES}, opened AS (
  INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)
  SELECT job_id, 'toLaunch', :at, :at FROM moved UNION ALL SELECT job_id, 'Launching', :at, 0 FROM moved
), unassigned AS (
  DELETE FROM assigned_resources WHERE moldable_job_id IN (SELECT assigned_moldable_job FROM moved)
), assigned AS (
  INSERT INTO assigned_resources (moldable_job_id, resource_id, assigned_resource_index)
  SELECT picked.moldable, picked.resource_id, 'CURRENT' FROM picked
  JOIN moved ON moved.assigned_moldable_job = picked.moldable
  ON CONFLICT (moldable_job_id, resource_id) DO UPDATE SET assigned_resource_index = 'CURRENT'
), alternatives AS (
  SELECT alternative.moldable FROM unnest(CAST(:alternatives AS integer[]), CAST(:alternative_jobs AS integer[]))
    AS alternative(moldable, job_id)
  WHERE alternative.job_id IN (SELECT job_id FROM moved)
), forgot_starts AS (
  DELETE FROM gantt_jobs_predictions WHERE moldable_job_id IN (SELECT moldable FROM alternatives)
), forgot_resources AS (
  DELETE FROM gantt_jobs_resources WHERE moldable_job_id IN (SELECT moldable FROM alternatives)
)
SELECT {", ".join(LAUNCH_COLUMNS)} FROM moved
""", [
    ("job_ids", "integer[]"), ("moldables", "integer[]"), ("picked_moldables", "integer[]"),
    ("picked_resources", "integer[]"), ("alternatives", "integer[]"), ("alternative_jobs", "integer[]"),
    ("at", "double precision"),
])
