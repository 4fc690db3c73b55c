"""Reports to the head survive a broker that refuses them for a while."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from oar_celery.node import reports
from oar_celery.node.jobdir import JobDir


class FlakyApp:
    """Stands for a Celery app whose broker is down for the first ``failures`` sends.

    Its broker is not Redis, so the reports go through ``send_task``.
    """

    conf = SimpleNamespace(broker_url="memory://")

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, dict[str, Any], str]] = []
        self.done = threading.Event()

    def send_task(self, name: str, kwargs: dict[str, Any], queue: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.sent.append((name, kwargs, queue))
        self.done.set()


def test_end_report_is_recorded_then_retried_until_sent(tmp_path: Path, monkeypatch):
    sleep = time.sleep
    monkeypatch.setattr(reports.time, "sleep", lambda seconds: sleep(min(seconds, 0.01)))
    job = JobDir(tmp_path, 7)
    assert job.create() and not job.create()
    app = FlakyApp(failures=4)
    reports.job_ended(app, job, "n1", 0, "exited", "fine")  # type: ignore[arg-type]
    assert job.status is not None and job.status["exit_code"] == 0
    assert app.done.wait(5)
    name, kwargs, queue = app.sent[0]
    assert (name, queue) == ("oar.head.reports", "oar.head")
    assert kwargs == {"reports": [
        {"kind": "ended", "job_id": 7, "host": "n1", "exit_code": 0, "reason": "exited", "message": "fine"}
    ]}


def test_reports_waiting_together_go_in_one_batch(tmp_path: Path) -> None:
    app = FlakyApp(failures=0)
    sender = reports.Sender(app)  # type: ignore[arg-type]
    for job_id in range(1, 251):
        sender.waiting.put({"kind": "running", "job_id": job_id, "host": "n1", "pid": job_id})
    sender.start()
    deadline = time.monotonic() + 5
    while sum(len(k["reports"]) for _, k, _ in app.sent) < 250 and time.monotonic() < deadline:
        time.sleep(0.01)
    sizes = [len(kwargs["reports"]) for _, kwargs, _ in app.sent]
    assert sizes == [reports.BATCH, reports.BATCH, 50]
    sent = [r["job_id"] for _, kwargs, _ in app.sent for r in kwargs["reports"]]
    assert sent == list(range(1, 251))


def test_reports_still_waiting_are_sent_at_exit() -> None:
    app = FlakyApp(failures=0)
    sender = reports.Sender(app)  # type: ignore[arg-type]  # not started: as if its thread never got to them
    for job_id in (1, 2):
        sender.waiting.put({"kind": "ended", "job_id": job_id, "host": "n1", "exit_code": 0, "reason": "exited"})
    sender.flush()
    assert [[r["job_id"] for r in kwargs["reports"]] for _, kwargs, _ in app.sent] == [[1, 2]]
    sender.flush()
    assert len(app.sent) == 1


def test_on_a_redis_broker_a_batch_is_queued_for_almighty_with_one_cycle_task(redis_url: str) -> None:
    import base64
    import json

    import redis

    from oar_celery.celery_app import create_app
    from oar_celery.config import Settings
    from oar_celery.protocol.names import Key

    app = create_app(Settings(broker_url=redis_url, result_backend=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("oar.head", Key.QUEUED, Key.PENDING, Key.QUEUED_REPORTS)
    started = [{"kind": "running", "job_id": 3, "host": "n1", "pid": 42}]
    ended = [{"kind": "ended", "job_id": 3, "host": "n1", "exit_code": 0, "reason": "exited", "message": ""}]
    reports.send(app, reports.REPORTS_TASK, {"reports": started})
    reports.send(app, reports.REPORTS_TASK, {"reports": ended})
    assert [json.loads(raw) for raw in client.lrange(Key.QUEUED_REPORTS, 0, -1)] == [started, ended]
    assert client.smembers(Key.PENDING) == {b"Reports", b"Term"}  # only the end asks for the scheduler
    (raw,) = client.lrange("oar.head", 0, -1)  # one cycle task: the second batch found it on its way
    client.delete("oar.head", Key.QUEUED, Key.PENDING, Key.QUEUED_REPORTS)
    message = json.loads(raw)
    assert message["headers"]["task"] == "oar.almighty.cycle"
    assert message["properties"]["delivery_info"]["routing_key"] == "oar.head"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {})


def test_other_node_messages_on_a_redis_broker_are_celery_tasks_on_the_head_queue(redis_url: str) -> None:
    import base64
    import json

    import redis

    from oar_celery.celery_app import create_app
    from oar_celery.config import Settings

    app = create_app(Settings(broker_url=redis_url, result_backend=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("oar.head")
    reports.send(app, "oar.head.job_running", {"job_id": 3, "host": "n1", "pid": 42})
    (raw,) = client.lrange("oar.head", 0, -1)
    client.delete("oar.head")
    message = json.loads(raw)
    assert message["headers"]["task"] == "oar.head.job_running"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {"job_id": 3, "host": "n1", "pid": 42})
