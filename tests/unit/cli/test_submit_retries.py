"""A submission whose delivery is in doubt is sent again under the same submission id."""

from __future__ import annotations

from typing import Any

import pytest

from oar_celery.client import api
from oar_celery.client.errors import BrokerUnreachable, NoAnswer


class FlakyHead:
    """Fails the first calls as told, then answers; records what it was sent and how long it waited."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[tuple[dict[str, Any], float | None]] = []

    def __call__(self, task: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append((kwargs, timeout))
        if self.failures:
            raise self.failures.pop(0)
        return {"job_ids": [7]}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.time, "sleep", lambda _: None)


def _submit(monkeypatch: pytest.MonkeyPatch, head: FlakyHead) -> list[int]:
    monkeypatch.setattr("oar_celery.client.transport.call", head)
    return api.submit({"command": "true", "resources": ["/core=1"], "directory": "/tmp"})


def test_an_unreachable_broker_is_tried_again_with_the_same_submission_id(monkeypatch: pytest.MonkeyPatch) -> None:
    head = FlakyHead([BrokerUnreachable("down"), BrokerUnreachable("down")])
    assert _submit(monkeypatch, head) == [7]
    ids = {kwargs["request"]["submission_id"] for kwargs, _ in head.calls}
    assert len(head.calls) == 3 and len(ids) == 1


def test_a_lost_answer_is_asked_again_with_the_same_id_and_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    head = FlakyHead([NoAnswer("no answer"), NoAnswer("still none")])
    assert _submit(monkeypatch, head) == [7]
    assert len(head.calls) == 3
    assert len({kwargs["request"]["submission_id"] for kwargs, _ in head.calls}) == 1
    assert len({kwargs["deadline"] for kwargs, _ in head.calls}) == 1
    assert all(wait is not None and wait <= api.ASK_AGAIN_AFTER for _, wait in head.calls)
