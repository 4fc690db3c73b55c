"""The head's side of bipbip: what nodes report about the jobs they run.

Nodes send their reports in batches. On a Redis broker a node queues its
batch in Redis itself (:data:`Key.QUEUED_REPORTS`, :func:`almighty.queue_reports`)
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

Where the head has keys, a report counts only if its node signed it, recently
and once, about a job that holds resources on that node
(:mod:`oar_celery.head.lib.trust`); a refused report is logged and counted,
and the rest of its batch applied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from oar_celery.db.models import FINAL_STATES, EventLog, Job
from oar_celery.db.session import now, session_scope
from oar_celery.head.lib import judas, sender, trust
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.store import ReportChange, store_for
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.bus import broker_redis, notify, queue_reports
from oar_celery.protocol.messages import EndedReport, EndReason, Report, RunningReport, parse_report
from oar_celery.protocol.names import Key, Task
from oar_celery.protocol.signing import head_keyring
from oar_celery.protocol.states import JobState
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

    def outcomes(self) -> dict[str, str]:
        """Each ended job's final state and why, by job id: ``{"12": "Error on node1: the job exited ..."}``."""
        return {str(e.job_id): f"{'Terminated' if e.ok else 'Error'} on {e.host}: {e.text}" for e in self.ended}


#: Most batches one cycle applies; the rest wait for the next cycle.
CYCLE_BATCHES = 1000


def reports_task(reports: list[Report]) -> None:
    """A node's batch of ``running`` / ``ended`` reports: queued for the next Almighty cycle."""
    queue_reports(reports if isinstance(reports, list) else [])


def apply_queued(context: Context) -> Applied:
    """Almighty's ``reports`` module: apply every queued batch in one transaction, then drop them."""
    client = context.redis
    batches = client.lrange(Key.QUEUED_REPORTS, 0, CYCLE_BATCHES - 1)
    if not batches:
        return Applied()
    reports: list[Report] = []
    for raw in batches:
        try:
            batch = json.loads(raw)
        except (TypeError, ValueError) as error:
            logger.error("report batch %r dropped: %s", raw[:200], error)
            continue
        if isinstance(batch, list):
            reports.extend(batch)
        else:
            logger.error("report batch %r dropped: not a list", raw[:200])
    verified = trust.verified_reports(client, reports)
    try:
        applied = process(verified.reports, in_cycle=True)
    except Exception:
        verified.release(client)
        raise
    client.ltrim(Key.QUEUED_REPORTS, len(batches), -1)
    return applied


def job_running(job_id: int, host: str, pid: int | None = None) -> None:
    """The node started the job: ``Launching`` → ``Running`` (a batch of one)."""
    process([RunningReport(kind="running", job_id=job_id, host=host, pid=pid)])


def job_ended(job_id: int, host: str, exit_code: int | None, reason: EndReason = "exited", message: str = "") -> None:
    """The job's process is gone: ``Terminated`` if its command ran to its end (exit code kept), else ``Error``."""
    process([EndedReport(kind="ended", job_id=job_id, host=host, exit_code=exit_code, reason=reason, message=message)])


def process(reports: Sequence[Report], *, in_cycle: bool = False) -> Applied:
    """Apply a batch of reports in one transaction, then notify once.

    ``in_cycle``: called by an Almighty cycle, which schedules right after,
    so no ``Term`` message is needed for the jobs that ended.
    """
    running, ended = _read(reports)
    if not running and not ended:
        return Applied()
    checked = head_keyring().enabled
    with session_scope() as session:
        if checked:
            running, ended = _theirs_if_also_ended(session, running, ended)
        applied = _apply(session, running, ended, checked=checked)
    _after_commit(applied, in_cycle=in_cycle)
    return applied


def _read(reports: Sequence[object]) -> tuple[dict[int, str], dict[int, Ended]]:
    """Running reports (job → host) and end reports by job; malformed ones are logged and dropped."""
    running: dict[int, str] = {}
    ended: dict[int, Ended] = {}
    for raw in reports if isinstance(reports, list) else []:
        try:
            report = parse_report(raw)
        except ValueError as error:
            logger.error("report %r dropped: %s", raw, error)
            continue
        if report["kind"] == "ended":
            reason = report["reason"]
            code = wait_status(report["exit_code"], reason)
            text = report["message"] or _describe(code, reason)
            ended[report["job_id"]] = Ended(report["job_id"], report["host"], code, reason, text)
        else:
            running[report["job_id"]] = report["host"]
    return running, ended


def _theirs_if_also_ended(session: Session, running: dict[int, str], ended: dict[int, Ended]
                          ) -> tuple[dict[int, str], dict[int, Ended]]:
    """Both reports about a job that two hosts claim, one running and one ended, checked here.

    The store checks the host of every change it applies (:class:`ReportChange`'s ``host``), one change
    per job, the end's; a running report from another host than the end's makes no change, so both
    claims are checked first (one query, only in that case): the reports about another node's job are
    refused, and what is left of the two applies.
    """
    split = [job_id for job_id, host in running.items() if job_id in ended and ended[job_id].host != host]
    if not split:
        return running, ended
    foreign = trust.off_their_hosts(session, [claim for j in split for claim in ((j, running[j]), (j, ended[j].host))])
    return _without_foreign(running, ended, foreign) if foreign else (running, ended)


def _apply(session: Session, running: dict[int, str], ended: dict[int, Ended], *, checked: bool) -> Applied:
    """The batch through the store, in one statement on PostgreSQL; what it changed.

    ``checked``: each change names its node, and the store refuses one about a job that is not on it; the
    refused reports are logged and counted, and left out of what follows.
    """
    _name_walltime_kills(session, ended)
    changes = [ReportChange(job_id, JobState.RUNNING, True, host=host if checked else None)
               for job_id, host in running.items() if job_id not in ended]
    changes += [
        ReportChange(e.job_id, JobState.TERMINATED if e.ok else JobState.ERROR, ran(e.exit_code, e.reason),
                     e.exit_code, e.text, e.host if checked else None)
        for e in ended.values()
    ]
    result = store_for(session).apply_reports(session, changes, now())
    if result.foreign:
        running, ended = _without_foreign(running, ended, result.foreign)
    moved = result.moved
    applied = Applied()
    hosts = {**{e.job_id: e.host for e in ended.values()}, **running}
    for change in moved:
        applied.methods[change.job_id] = change.notify
        if change.old_state == JobState.LAUNCHING and change.ran:
            applied.running[change.job_id] = hosts[change.job_id]
    done = {change.job_id for change in moved if change.new_state != JobState.RUNNING}
    applied.ended = [e for e in ended.values() if e.job_id in done]  # accounted by the store
    _record_events(session, applied.ended)
    unmoved = [job_id for job_id in running if job_id not in ended and job_id not in applied.methods]
    if unmoved:  # reported running, not moved: ended already (killed by the head), or reported twice
        states = session.execute(_STATES_OF, {"job_ids": unmoved}).all()
        applied.stale = {job_id: running[job_id] for job_id, state, _ in states if state in FINAL_STATES}
    return applied


def _without_foreign(running: dict[int, str], ended: dict[int, Ended], foreign: set[tuple[int, str]]
                     ) -> tuple[dict[int, str], dict[int, Ended]]:
    """The reports the store refused as another node's job, logged and counted, then left out."""
    client = broker_redis()
    trust.refuse_foreign(client, "running", {(j, h) for j, h in foreign if running.get(j) == h})
    trust.refuse_foreign(client, "ended", {(j, h) for j, h in foreign if j in ended and ended[j].host == h})
    return ({j: h for j, h in running.items() if (j, h) not in foreign},
            {j: e for j, e in ended.items() if (j, e.host) not in foreign})


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


#: The states of jobs reported running that the batch did not move.
_STATES_OF = select(Job.job_id, Job.state, Job.notify).where(Job.job_id.in_(bindparam("job_ids", expanding=True)))


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
    sender.send(sender.to_node(host, Task.NODE_KILL, job_id=job_id, grace=1) for job_id, host in applied.stale.items())
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
    from oar_celery.head.lib.resubmission import resubmit_if_idempotent

    resubmit_if_idempotent(job_id, exit_99=True)


def _describe(exit_code: int | None, reason: str) -> str:
    if reason == "exited":
        return f"the job exited with code {exit_value(exit_code)}"
    if reason == "killed":
        return "the job was killed"
    if reason == "walltime":
        return "the job was killed at its walltime"
    return reason.replace("_", " ")
