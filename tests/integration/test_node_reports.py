"""Reports to the head survive a broker that refuses them for a while."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from oar_celery.node import reports
from oar_celery.node.jobdir import JobDir


class FlakyApp:
    """Stands for a Celery app whose broker is down for the first ``failures`` sends."""

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
    assert (name, queue) == ("oar.head.job_ended", "oar.head")
    assert kwargs == {"job_id": 7, "host": "n1", "exit_code": 0, "reason": "exited", "message": "fine"}
