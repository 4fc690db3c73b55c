"""The head's side of bipbip: what nodes report about the jobs they run.

Nodes send their reports in batches. On a Redis broker a node queues its
batch in Redis itself (:data:`QUEUED_REPORTS`, :func:`almighty.queue_reports`)
and sends Almighty a ``Term`` (or ``Reports`` when no job ended) in the same
round trip; on another broker the ``oar.head.reports`` task does that on the
head. The next Almighty cycle applies
every batch queued since the last one, from all nodes at once
(:func:`apply_queued`), then schedules and launches in the same cycle. The busier the cluster, the more batches a cycle
takes in one transaction, instead of one transaction per node per batch.

Applying is one transaction of bulk conditional updates (``Launching`` →
``Running`` for the jobs that started, ``STARTED_STATES`` →
``Terminated``/``Error`` for those that ended), then the notifications. The
queued batches are removed only once that transaction has committed, and the
conditional updates make every report idempotent: a head killed in the
middle applies the same batches again, and a re-sent batch changes nothing
the second time. The one-report tasks of older nodes
(``oar.head.job_running``, ``oar.head.job_ended``) apply a batch of one at
once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from oar_celery import judas
from oar_celery.almighty import QUEUED_REPORTS, broker_redis, notify, queue_reports
from oar_celery.celery_app import app, node_queue
from oar_celery.db.models import STARTED_STATES, EventLog, FragJob, Job
from oar_celery.db.prepared import Prepared
from oar_celery.db.session import now, session_scope
from oar_celery.transitions import CLOSE_LOG_ENTRIES, add_event, finish_each, release_cte, set_state
from oar_celery.wait_status import exit_value, wait_status

logger = logging.getLogger(__name__)
#: Events recorded when a node ends a job for a reason other than its own exit.
EVENT_FOR_REASON = {
    "walltime": "WALLTIME",
    "prologue_error": "PROLOGUE_ERROR",
    "epilogue_error": "EPILOGUE_ERROR",
    "launch_error": "LAUNCHING_ERROR",
    "user_unknown": "LAUNCHING_ERROR",
}


def succeeded(exit_code: int | None, reason: str) -> bool:
    """OAR's exit semantics: a job whose command ran to its own end is ``Terminated``, whatever its exit code.

    Only a failure of the launch machinery (prologue, node, walltime, kill)
    gives ``Error`` (OAR3's ``check_end_of_job``: oarexec's error 0 is
    ``SWITCH_INTO_TERMINATE_STATE``, the exit code is only stored).
    """
    return exit_code is not None and reason in ("exited", "epilogue_error")


def ran(exit_code: int | None, reason: str) -> bool:
    """Whether the job's own command started (it has an exit status and did not fail to launch)."""
    return exit_code is not None and reason not in ("launch_error", "prologue_error", "user_unknown")


@dataclass
class Ended:
    """One end report, as the head reads it."""

    job_id: int
    host: str
    exit_code: int | None
    reason: str
    text: str

    @property
    def ok(self) -> bool:
        return succeeded(self.exit_code, self.reason)


@dataclass
class Applied:
    """What a batch changed, for what happens after its commit (and for tests)."""

    running: dict[int, str] = field(default_factory=dict)
    ended: list[Ended] = field(default_factory=list)
    stale: dict[int, str] = field(default_factory=dict)
    methods: dict[int, str | None] = field(default_factory=dict)


#: Most batches one cycle applies; the rest wait for the next cycle.
CYCLE_BATCHES = 1000


@app.task(name="oar.head.reports", acks_late=True, ignore_result=True)
def reports_task(reports: list[dict[str, Any]]) -> None:
    """A node's batch of ``running`` / ``ended`` reports: queued for the next Almighty cycle."""
    queue_reports(reports if isinstance(reports, list) else [])


def apply_queued() -> Applied:
    """Almighty's ``reports`` module: apply every queued batch in one transaction, then drop them."""
    client = broker_redis()
    batches = client.lrange(QUEUED_REPORTS, 0, CYCLE_BATCHES - 1)
    if not batches:
        return Applied()
    reports: list[dict[str, Any]] = []
    for raw in batches:
        try:
            reports.extend(json.loads(raw))
        except (TypeError, ValueError) as error:
            logger.error("report batch %r dropped: %s", raw[:200], error)
    applied = process(reports, in_cycle=True)
    client.ltrim(QUEUED_REPORTS, len(batches), -1)
    return applied


@app.task(name="oar.head.job_running", acks_late=True, ignore_result=True)
def job_running(job_id: int, host: str, pid: int | None = None) -> None:
    """The node started the job: ``Launching`` → ``Running`` (a batch of one)."""
    process([{"kind": "running", "job_id": job_id, "host": host, "pid": pid}])


@app.task(name="oar.head.job_ended", acks_late=True, ignore_result=True)
def job_ended(job_id: int, host: str, exit_code: int | None, reason: str = "exited", message: str = "") -> None:
    """The job's process is gone: ``Terminated`` if its command ran to its end (exit code kept), else ``Error``."""
    process([{"kind": "ended", "job_id": job_id, "host": host, "exit_code": exit_code, "reason": reason,
              "message": message}])


def process(reports: list[dict[str, Any]], *, in_cycle: bool = False) -> Applied:
    """Apply a batch of reports in one transaction, then notify once.

    ``in_cycle``: called by an Almighty cycle, which schedules right after,
    so no ``Term`` message is needed for the jobs that ended.
    """
    running, ended = _read(reports)
    if not running and not ended:
        return Applied()
    with session_scope() as session:
        applied = _apply(session, running, ended)
    _after_commit(applied, in_cycle=in_cycle)
    return applied


def _read(reports: list[dict[str, Any]]) -> tuple[dict[int, str], dict[int, Ended]]:
    """Running reports (job → host) and end reports by job; malformed ones are logged and dropped."""
    running: dict[int, str] = {}
    ended: dict[int, Ended] = {}
    for report in reports if isinstance(reports, list) else []:
        try:
            job_id, host = int(report["job_id"]), str(report.get("host") or "")
            if report.get("kind") == "ended":
                code = report.get("exit_code")
                reason = str(report.get("reason") or "exited")
                code = wait_status(None if code is None else int(code), reason)
                ended[job_id] = Ended(job_id, host, code, reason, report.get("message") or _describe(code, reason))
            elif report.get("kind") == "running":
                running[job_id] = host
            else:
                raise ValueError(f"unknown kind {report.get('kind')!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            logger.error("report %r dropped: %s", report, error)
    return running, ended


def _apply(session: Session, running: dict[int, str], ended: dict[int, Ended]) -> Applied:
    _name_walltime_kills(session, ended)
    if session.get_bind().dialect.name == "postgresql":
        return _apply_in_one_statement(session, running, ended)
    return _apply_statement_by_statement(session, running, ended)


def _apply_statement_by_statement(session: Session, running: dict[int, str], ended: dict[int, Ended]) -> Applied:
    """Other databases: the starts, the ends of each final state, the frags, then the states read back."""
    at = now()
    applied = Applied()
    # the end report may overtake the running one: the job ran all the same
    ran_ids = [e.job_id for e in ended.values() if ran(e.exit_code, e.reason)]
    moved = set_state(session, {*running, *ran_ids}, "Running", expected=("Launching",), start_time=at)
    hosts = {**{e.job_id: e.host for e in ended.values()}, **running}
    applied.running = {job_id: hosts[job_id] for job_id in moved}
    done = set(_finish(session, ended, ok=True)) | set(_finish(session, ended, ok=False))
    applied.ended = [e for e in ended.values() if e.job_id in done]
    _record_ends(session, applied.ended)
    rows = session.execute(_STATES_OF, {"job_ids": list(hosts)}).all()
    applied.methods = {job_id: method for job_id, _, method in rows}
    applied.stale = {
        job_id: running[job_id] for job_id, state, _ in rows
        if job_id in running and job_id not in ended and state in ("Error", "Terminated")
    }
    return applied


#: PostgreSQL: a whole batch in one statement. ``Running`` rows move ``Launching`` jobs; end rows move
#: started jobs to ``Terminated`` or ``Error``, through ``Running`` (logged, start time set) for a job
#: whose end report came with or before its start report and whose command ran. ``old`` locks the rows
#: and gives their state before the move, which the update checks again.
_APPLY = Prepared("oar_apply_reports", f"""
WITH each AS (
  SELECT * FROM unnest(CAST(:job_ids AS integer[]), CAST(:states AS text[]), CAST(:ran AS boolean[]),
                       CAST(:exit_codes AS integer[]), CAST(:messages AS text[]))
    AS each(job_id, new_state, ran, exit_code, message)
), old AS (
  SELECT jobs.job_id, jobs.state FROM jobs JOIN each ON each.job_id = jobs.job_id
  WHERE CASE WHEN each.new_state = 'Running' THEN jobs.state = 'Launching'
             ELSE jobs.state = ANY(CAST(:started AS text[])) END
  FOR UPDATE OF jobs
), moved AS (
  UPDATE jobs SET
    state = each.new_state,
    start_time = CASE WHEN old.state = 'Launching' AND each.ran THEN :at ELSE jobs.start_time END,
    stop_time = CASE WHEN each.new_state = 'Running' THEN jobs.stop_time ELSE :at END,
    exit_code = COALESCE(each.exit_code, jobs.exit_code),
    message = COALESCE(each.message, jobs.message)
  FROM each JOIN old ON old.job_id = each.job_id
  WHERE jobs.job_id = each.job_id AND jobs.state = old.state
  RETURNING jobs.job_id, old.state AS old_state, each.new_state, each.ran, jobs.assigned_moldable_job, jobs.notify
), {CLOSE_LOG_ENTRIES}, opened AS (
  INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop)
  SELECT job_id, 'Running', :at, :at FROM moved WHERE old_state = 'Launching' AND ran AND new_state <> 'Running'
  UNION ALL SELECT job_id, new_state, :at, 0 FROM moved
), {release_cte("new_state <> 'Running'")}, fragged AS (
  UPDATE frag_jobs SET frag_state = 'FRAGGED'
  WHERE frag_state IN ('LEON', 'TIMER_ARMED') AND frag_id_job IN (SELECT job_id FROM moved WHERE new_state <> 'Running')
)
SELECT job_id, old_state, new_state, ran, notify FROM moved
""", [
    ("job_ids", "integer[]"), ("states", "text[]"), ("ran", "boolean[]"), ("exit_codes", "integer[]"),
    ("messages", "text[]"), ("started", "text[]"), ("at", "double precision"),
])


def _apply_in_one_statement(session: Session, running: dict[int, str], ended: dict[int, Ended]) -> Applied:
    """PostgreSQL: what :func:`_apply_statement_by_statement` does in four to six statements, in one.

    A batch cost a statement for the starts, one per final state, one for
    the frags and one to read the jobs' states back: most of an Almighty
    cycle's report work was their round trips.
    """
    rows = {job_id: ("Running", True, None, None) for job_id in running if job_id not in ended}
    for end in ended.values():
        final = "Terminated" if end.ok else "Error"
        rows[end.job_id] = (final, ran(end.exit_code, end.reason), end.exit_code, end.text)
    ids = list(rows)
    moved = _APPLY.execute(session, {
        "job_ids": ids, "states": [rows[j][0] for j in ids], "ran": [rows[j][1] for j in ids],
        "exit_codes": [rows[j][2] for j in ids], "messages": [rows[j][3] for j in ids],
        "started": list(STARTED_STATES), "at": now(),
    }).all()
    applied = Applied()
    hosts = {**{e.job_id: e.host for e in ended.values()}, **running}
    done: set[int] = set()
    for job_id, old_state, new_state, job_ran, method in moved:
        applied.methods[job_id] = method
        if old_state == "Launching" and job_ran:
            applied.running[job_id] = hosts[job_id]
        if new_state != "Running":
            done.add(job_id)
    applied.ended = [e for e in ended.values() if e.job_id in done]
    _record_events(session, applied.ended)
    unmoved = [job_id for job_id in running if job_id not in ended and job_id not in applied.methods]
    if unmoved:  # reported running, not moved: ended already (killed by the head), or reported twice
        states = session.execute(_STATES_OF, {"job_ids": unmoved}).all()
        applied.stale = {job_id: running[job_id] for job_id, state, _ in states if state in ("Error", "Terminated")}
    return applied


def _name_walltime_kills(session: Session, ended: dict[int, Ended]) -> None:
    """A job Sarko killed at its walltime ended "killed" on its node: say "walltime reached", as OAR does."""
    killed = [e.job_id for e in ended.values() if e.reason == "killed"]
    if not killed:
        return
    rows = session.execute(
        select(EventLog.job_id).where(EventLog.job_id.in_(killed), EventLog.type == "WALLTIME").distinct()
    )
    for (job_id,) in rows:
        end = ended[job_id]
        end.reason = "walltime"
        end.text = f"walltime reached, job killed on {end.host}" if end.host else "walltime reached, job killed"


#: Statements of every batch, built once.
_STATES_OF = select(Job.job_id, Job.state, Job.notify).where(Job.job_id.in_(bindparam("job_ids", expanding=True)))
_FRAGS_DONE = (
    update(FragJob)
    .where(
        FragJob.frag_id_job.in_(bindparam("job_ids", expanding=True)),
        FragJob.frag_state.in_(("LEON", "TIMER_ARMED")),
    )
    .values(frag_state="FRAGGED")
    .execution_options(synchronize_session=False)
)


def _finish(session: Session, ended: dict[int, Ended], *, ok: bool) -> list[int]:
    ends = {e.job_id: (e.text, e.exit_code) for e in ended.values() if e.ok == ok}
    return finish_each(session, ends, "Terminated" if ok else "Error", expected=STARTED_STATES)


def _record_ends(session: Session, ended: list[Ended]) -> None:
    """Events for the ends that are not the job's own exit, and frags that are now done."""
    _record_events(session, ended)
    if ended:
        session.execute(_FRAGS_DONE, {"job_ids": [e.job_id for e in ended]})


def _record_events(session: Session, ended: list[Ended]) -> None:
    """An event for each end that is not the job's own exit (walltime, prologue, launch...)."""
    for end in ended:
        event = EVENT_FOR_REASON.get(end.reason)
        if event:
            add_event(session, event, end.job_id, end.text, hosts=[end.host], to_check=end.reason != "walltime")


def _after_commit(applied: Applied, *, in_cycle: bool = False) -> None:
    """Notifications as tasks of their own, kills of jobs reported running too late, one Almighty message."""
    for job_id, host in applied.running.items():
        logger.info("job %s running on %s", job_id, host)
        judas.notify_later(job_id, applied.methods.get(job_id), "RUNNING", f"job started on {host}")
    for job_id, host in applied.stale.items():
        logger.warning("job %s reported running on %s but has ended: killing it", job_id, host)
        app.send_task("oar.node.kill", kwargs={"job_id": job_id, "grace": 1}, queue=node_queue(host))
    for end in applied.ended:
        logger.info("job %s ended on %s: %s", end.job_id, end.host, end.text)
        judas.notify_later(end.job_id, applied.methods.get(end.job_id), "END" if end.ok else "ERROR", end.text)
        after_end(end.job_id, end.exit_code, end.reason)
    if applied.ended:
        node_trouble = any(e.reason in EVENT_FOR_REASON and e.reason != "walltime" for e in applied.ended)
        notify(([] if in_cycle else ["Term"]) + (["ChState"] if node_trouble else []))


def after_end(job_id: int, exit_code: int | None, reason: str = "exited") -> None:
    """Resubmit an ``idempotent`` job that asked for it by exiting 99 (OAR's convention).

    Only the report that ended the job gets here (the move to ``Error`` is a
    conditional update), so a redelivered report never resubmits twice.
    """
    if exit_value(exit_code) != 99 or reason != "exited":
        return
    from oar_celery.tasks.submit import resubmit_if_idempotent

    resubmit_if_idempotent(job_id, exit_99=True)


def _describe(exit_code: int | None, reason: str) -> str:
    if reason == "exited":
        return f"the job exited with code {exit_value(exit_code)}"
    if reason == "killed":
        return "the job was killed"
    if reason == "walltime":
        return "the job was killed at its walltime"
    return reason.replace("_", " ")
