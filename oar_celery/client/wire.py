"""Calling a head task with the ``redis`` package alone, in Celery's own message format.

Importing Celery costs a user command about 0.2 s, more than the whole round
trip to the head. With a Redis broker and a Redis result backend, what Celery
does for a client is small enough to do here: push one task message
(protocol 2, JSON body, the envelope of kombu's Redis transport) on the head's
queue list, and read the answer the worker's Redis backend stores under
``celery-task-meta-<id>`` and publishes on the channel of the same name. The
worker cannot tell the difference; the message is JSON, as every message.
"""

from __future__ import annotations

import json
import time
from typing import Any

from oar_celery.protocol.names import result_key
from oar_celery.protocol.wire import new_id, push, task_message

__all__ = ["NoAnswer", "NotSent", "TaskFailed", "call", "push", "result_key", "task_message", "usable"]

#: Answers of a task that has not finished yet (the backend may publish them).
_PENDING_STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY")


class NoAnswer(Exception):
    """The head did not answer in time."""


class NotSent(Exception):
    """The broker could not be reached before the task was pushed: it was never sent."""


class TaskFailed(Exception):
    """The task raised on the head; the text is Celery's exception summary."""


def usable(broker_url: str, backend_url: str) -> bool:
    """Whether both ends are plain Redis, which is all this module speaks."""
    return all(url.startswith(("redis://", "rediss://", "unix://")) for url in (broker_url, backend_url))


def call(broker_url: str, backend_url: str, task: str, kwargs: dict[str, Any], queue: str, wait: float) -> Any:
    """Send ``task`` and return its result; NoAnswer after ``wait`` s, TaskFailed if it raised.

    The client subscribes to the result channel before it publishes, so the
    answer cannot slip by; it reads the stored result too, in case the
    backend stored it without publishing.
    """
    task_id = new_id()
    key = result_key(task_id)
    try:
        broker, backend, pubsub = _connect(broker_url, backend_url, wait + 5)
        pubsub.subscribe(key)
    except Exception as exc:  # noqa: BLE001 - whatever the client, nothing was pushed
        raise NotSent(str(exc)) from exc
    try:
        push(broker, task, kwargs, queue, task_id=task_id, expires=wait)
        return _await(backend, pubsub, key, time.monotonic() + wait)
    finally:
        _close(backend, pubsub, key)
        broker.close()
        if backend is not broker:
            backend.close()


def _connect(broker_url: str, backend_url: str, timeout: float) -> tuple[Any, Any, Any]:
    """Broker and backend clients and a subscriber: :mod:`resp` where it can, else redis-py.

    ``import redis`` alone costs a user command more than the head takes to
    answer; redis-py stays for what :mod:`resp` does not speak (TLS, AUTH).
    """
    from oar_celery.client import resp

    if resp.supported(broker_url) and resp.supported(backend_url):
        small = resp.Client(broker_url, timeout)
        small_backend = small if backend_url == broker_url else resp.Client(backend_url, timeout)
        return small, small_backend, resp.PubSub(backend_url, timeout)
    import redis

    broker = redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=timeout)
    backend = broker if backend_url == broker_url else redis.Redis.from_url(
        backend_url, socket_connect_timeout=3, socket_timeout=timeout
    )
    return broker, backend, backend.pubsub(ignore_subscribe_messages=True)


def _await(backend: Any, pubsub: Any, key: str, deadline: float) -> Any:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            stored = backend.get(key)
            if stored is not None:
                return _decode(stored, key)
            raise NoAnswer(key)
        message = pubsub.get_message(timeout=min(left, 1.0))
        raw = message["data"] if message else backend.get(key) if left < 1.0 else None
        if raw is None:
            continue
        result = _decode(raw, key)
        if result is not _PENDING:
            return result


_PENDING = object()


def _decode(raw: bytes | str, key: str) -> Any:
    meta = json.loads(raw)
    status = meta.get("status")
    if status in _PENDING_STATES:
        return _PENDING
    if status == "SUCCESS":
        return meta.get("result")
    failure = meta.get("result")
    if isinstance(failure, dict):
        failure = f"{failure.get('exc_type', 'error')}: {failure.get('exc_message', '')}"
    raise TaskFailed(str(failure))


def _close(backend: Any, pubsub: Any, key: str) -> None:
    """Unsubscribe and forget the result (failing to is harmless: it expires)."""
    try:
        pubsub.close()
        backend.delete(key)
    except Exception:  # noqa: BLE001, S110 - cleanup only
        pass
