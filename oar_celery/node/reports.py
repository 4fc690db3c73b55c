"""Reports from the node to the head, which must never be dropped.

The head's state only moves when it hears from the node, so a report that
cannot be sent (broker down, network cut) is retried with a growing delay
until it goes through. The final status is written to the job directory
before the end report is queued, so a head that still missed it gets it
again from a ping answer or a duplicate launch.

Job reports (``running``, ``ended``) go through one sender thread per
process, which groups what is waiting (up to :data:`BATCH` reports, or what
comes within :data:`GATHER` seconds) into one batch: a node running many
short jobs then costs the head one transaction per batch instead of two per
job. Re-sent reports are harmless, the head's updates being conditional.

On a Redis broker the node queues the batch for Almighty's next cycle itself
(:func:`oar_celery.protocol.bus.queue_reports`, one round trip), where a head
task would only have queued it there, one more hop through the broker and
the head's pool for every batch. Other messages are pushed with one
``LPUSH`` in Celery's own format (:func:`oar_celery.protocol.wire.push`). On
another broker everything goes through ``send_task``, the batch as an
``oar.head.reports`` task.

Where the node has its key, each report of a batch, and every other message,
is signed with it when sent (:mod:`oar_celery.protocol.signing`): a batch
sent again is signed again, so the head never takes a retry for a replay.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from functools import lru_cache
from typing import Any, cast

import redis
from celery import Celery

from oar_celery.celery_app import HEAD_QUEUE
from oar_celery.node import node_hostname
from oar_celery.node.jobdir import JobDir
from oar_celery.protocol.bus import queue_reports
from oar_celery.protocol.messages import Report, RunningReport, ended_report
from oar_celery.protocol.names import Task
from oar_celery.protocol.signing import HEAD, REPORT, REPORT_FIELD, TASK_FIELD, node_key, sign, task_subject
from oar_celery.protocol.wire import push

logger = logging.getLogger(__name__)

MAX_DELAY = 60.0
#: Most reports in one batch.
BATCH = 100
#: Seconds the sender waits for more reports after the first one of a batch.
GATHER = 0.015
REPORTS_TASK = Task.REPORTS


def send(app: Celery, task: str, kwargs: dict[str, Any]) -> None:
    """Send ``task`` to the head now, or keep retrying in the background."""
    if _try_send(app, task, kwargs):
        return
    threading.Thread(target=_retry, args=(app, task, kwargs), name=f"oar-report-{task}", daemon=True).start()


def _try_send(app: Celery, task: str, kwargs: dict[str, Any]) -> bool:
    try:
        _send(app, task, kwargs)
    except Exception as error:  # noqa: BLE001 - any failure means "try again later"
        logger.warning("could not send %s %s: %s", task, kwargs, error)
        return False
    logger.debug("sent %s %s", task, kwargs)
    return True


def signed(task: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The message signed by the node it is about, each report of a batch on its own; as it is without a key.

    The node is the message's ``host``: this node on a real one; one of the
    nodes a single benchmark worker emulates (``bench/wide_worker.py``).
    """
    if task == REPORTS_TASK:
        return {"reports": [_signed_report(report) for report in kwargs["reports"]]}
    host = str(kwargs.get("host") or node_hostname())
    key = node_key(host)
    return kwargs if key is None else {**kwargs, TASK_FIELD: sign(key, host, task_subject(task, HEAD), kwargs)}


def _signed_report(report: Report) -> Report:
    host = str(report.get("host") or node_hostname())
    key = node_key(host)
    return report if key is None else cast(Report, {**report, REPORT_FIELD: sign(key, host, REPORT, report)})


def _send(app: Celery, task: str, kwargs: dict[str, Any]) -> None:
    kwargs = signed(task, kwargs)
    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        app.send_task(task, kwargs=kwargs, queue=HEAD_QUEUE)
    elif task == REPORTS_TASK:
        queue_reports(kwargs["reports"], client=_broker(url))
    else:
        push(_broker(url), task, kwargs, HEAD_QUEUE, ignore_result=True)


@lru_cache(maxsize=4)
def _broker(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30)


def _retry(app: Celery, task: str, kwargs: dict[str, Any]) -> None:
    delay = 1.0
    while True:
        time.sleep(delay)
        if _try_send(app, task, kwargs):
            return
        delay = min(delay * 2, MAX_DELAY)


class Sender(threading.Thread):
    """Groups queued job reports into batches for the head; retries a batch until it is sent."""

    def __init__(self, app: Celery) -> None:
        super().__init__(name="oar-report-sender", daemon=True)
        self.app = app
        self.waiting: queue.SimpleQueue[Report] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            batch = self._gather()
            delay = 1.0
            while not _try_send(self.app, REPORTS_TASK, {"reports": batch}):
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)

    def flush(self) -> None:
        """Send what still waits, once: at exit, a report left here would wait for Finaud's next ping."""
        batch: list[Report] = []
        while True:
            try:
                batch.append(self.waiting.get_nowait())
            except queue.Empty:
                break
        if batch:
            _try_send(self.app, REPORTS_TASK, {"reports": batch})

    def _gather(self) -> list[Report]:
        """Block for one report, then take what else comes within ``GATHER`` s, up to ``BATCH``."""
        batch = [self.waiting.get()]
        deadline = time.monotonic() + GATHER
        while len(batch) < BATCH:
            left = deadline - time.monotonic()
            try:
                batch.append(self.waiting.get(timeout=left) if left > 0 else self.waiting.get_nowait())
            except queue.Empty:
                break
        return batch


_senders: dict[tuple[int, int], Sender] = {}
_senders_lock = threading.Lock()


def sender(app: Celery) -> Sender:
    """This process's sender for ``app`` (a forked child starts its own)."""
    key = (os.getpid(), id(app))
    with _senders_lock:
        found = _senders.get(key)
        if found is None or not found.is_alive():
            found = _senders[key] = Sender(app)
            found.start()
            atexit.register(found.flush)
        return found


def queue_report(app: Celery, report: Report) -> None:
    """Hand one job report to the sender; it returns at once."""
    logger.debug("report %s", report)
    sender(app).waiting.put(report)


def job_running(app: Celery, host: str, job_id: int, pid: int) -> None:
    queue_report(app, RunningReport(kind="running", job_id=job_id, host=host, pid=pid))


def job_ended(
    app: Celery,
    job: JobDir,
    host: str,
    exit_code: int | None,
    reason: str,
    message: str,
    **times: float | None,
) -> dict[str, Any]:
    """Record the final status in the job directory, then tell the head."""
    status = {"exit_code": exit_code, "reason": reason, "message": message, "ended_at": time.time(), **times}
    try:
        job.write_json("status.json", status)
    except OSError as error:  # a full disk must not also lose the report
        logger.error("job %s: could not record its status: %s", job.job_id, error)
    logger.info("job %s ended on %s: %s (%s) %s", job.job_id, host, reason, exit_code, message)
    resend_end(app, job, host, status)
    return status


def resend_end(app: Celery, job: JobDir, host: str, status: dict[str, Any]) -> None:
    """Queue the end report that ``status`` (the job directory's record) stands for."""
    queue_report(app, ended_report(job.job_id, host, status))


def resend_last(app: Celery, job: JobDir, host: str) -> str:
    """Re-send the last report the head should have had for ``job``; what was sent."""
    status = job.status
    if status is not None:
        resend_end(app, job, host, status)
        return "job_ended"
    pid = job.pid
    if pid is not None:
        job_running(app, host, job.job_id, pid)
        return "job_running"
    return "nothing"
