"""The head's sender: messages decided in a transaction leave after its commit, and never after a rollback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session


@pytest.fixture
def broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    from oar_celery.config import settings

    monkeypatch.setenv("OAR_BROKER_URL", redis_url)
    settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    client.delete("oar.node.node7", "oar.head")
    yield client
    client.delete("oar.node.node7", "oar.head")
    settings.cache_clear()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'sender.db'}")
    with Session(engine) as opened:
        yield opened
    engine.dispose()


def tasks_on(client: redis.Redis, queue: str) -> list[tuple[str, dict[str, object]]]:
    """The task messages waiting on ``queue``, oldest first: name and keyword arguments."""
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], kwargs))
    return found


def test_messages_given_in_a_transaction_leave_only_once_it_commits(broker: redis.Redis, session: Session) -> None:
    from oar_celery.head.lib import sender

    with session.begin():
        session.execute(text("SELECT 1"))
        sender.after_commit(session, [sender.to_node("node7", "oar.node.kill", job_id=4, grace=1)])
        assert tasks_on(broker, "oar.node.node7") == []  # still inside the transaction
    assert tasks_on(broker, "oar.node.node7") == [("oar.node.kill", {"job_id": 4, "grace": 1})]


def test_a_rolled_back_transaction_sends_nothing_and_the_next_one_only_its_own(
    broker: redis.Redis, session: Session
) -> None:
    from oar_celery.head.lib import sender

    with pytest.raises(RuntimeError), session.begin():
        sender.after_commit(session, [sender.to_node("node7", "oar.node.kill", job_id=4, grace=1)])
        raise RuntimeError("the decision is undone")
    with session.begin():
        sender.after_commit(session, [sender.to_node("node7", "oar.node.signal", job_id=5, signum=12)])
    assert tasks_on(broker, "oar.node.node7") == [("oar.node.signal", {"job_id": 5, "signum": 12})]


def test_one_send_pushes_every_message_to_its_own_queue(broker: redis.Redis) -> None:
    from oar_celery.head.lib import sender

    sender.send([sender.to_node("node7", "oar.node.ping", token="t", job_ids=[]),
                 sender.to_head("oar.judas.notify", job_id=9, tag="END", comment="done")])
    assert tasks_on(broker, "oar.node.node7") == [("oar.node.ping", {"token": "t", "job_ids": []})]
    assert tasks_on(broker, "oar.head") == [("oar.judas.notify", {"job_id": 9, "tag": "END", "comment": "done"})]


def test_a_broker_that_cannot_be_reached_loses_the_messages_but_not_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from oar_celery.config import settings
    from oar_celery.head.lib import sender

    monkeypatch.setenv("OAR_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    settings.cache_clear()
    try:
        sender.send([sender.to_node("node7", "oar.node.kill", job_id=4, grace=1)])
    finally:
        settings.cache_clear()
    assert "not sent" in caplog.text  # Leon and the Runner send again what was lost
