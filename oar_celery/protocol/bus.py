"""The bus: the broker's Redis client, and the one way anyone reaches Almighty.

OAR3's modules never call each other; they tell Almighty what happened with
one notify function, and Almighty decides what runs. Here that function
adds the messages to a pending set and sends a cycle task unless one is on
its way, in one round trip (:data:`.scripts.NOTIFY`). Nodes queue their
report batches the same way (:func:`queue_reports`), so a batch reaches the
next cycle without a head task of its own in between.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache

import redis

from oar_celery.config import settings
from oar_celery.protocol import scripts
from oar_celery.protocol.messages import Report
from oar_celery.protocol.names import HEAD_QUEUE, Key, Message, Task
from oar_celery.protocol.wire import push, task_message

#: Seconds ``QUEUED`` outlives a cycle task that was lost or died without clearing it (each cycle renews it).
QUEUED_TTL = 5
_MESSAGES = frozenset(Message)


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30)


def broker_redis() -> redis.Redis:
    """A Redis client on this process's broker (one per URL, shared by every thread)."""
    return _client(settings().broker_url)


def notify(messages: Iterable[str], *, client: redis.Redis | None = None) -> bool:
    """Tell Almighty something happened; whether a cycle task was sent (at most one is on its way)."""
    names = [name for name in messages if name in _MESSAGES]
    if not names:
        return False
    client = client or broker_redis()
    keys = (Key.PENDING, Key.QUEUED, HEAD_QUEUE)
    return bool(client.eval(scripts.NOTIFY, len(keys), *keys, cycle_task(), QUEUED_TTL, *names))


def queue_reports(reports: Sequence[Report], *, client: redis.Redis | None = None) -> bool:
    """Queue a node's batch of job reports for the next cycle, and tell Almighty, in one round trip.

    Only an end frees resources, so only a batch with one asks for the
    scheduler (``Term``). The batch stays in ``oar:reports`` until a cycle has
    committed it; whether a cycle task was sent.
    """
    client = client or broker_redis()
    ended = any(isinstance(r, dict) and r.get("kind") == "ended" for r in reports)
    keys = (Key.PENDING, Key.QUEUED, HEAD_QUEUE, Key.QUEUED_REPORTS)
    message = Message.TERM if ended else Message.REPORTS
    batch = json.dumps(list(reports))
    return bool(client.eval(scripts.QUEUE_REPORTS, len(keys), *keys, cycle_task(), QUEUED_TTL, batch, message))


def cycle_task() -> bytes:
    """An ``oar.almighty.cycle`` task message, for the scripts that push it unless one is on its way."""
    return task_message(Task.CYCLE, {}, HEAD_QUEUE, ignore_result=True)


def send_head_task(client: redis.Redis, task: str, kwargs: dict[str, object] | None = None,
                   *, countdown: float | None = None) -> None:
    """Push a head task in Celery's own format: one ``LPUSH``, no producer, no task-sent event."""
    push(client, task, kwargs or {}, HEAD_QUEUE, ignore_result=True, countdown=countdown)
