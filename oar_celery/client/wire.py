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

import base64
import datetime
import json
import os
import socket
import time
import uuid
from typing import Any

#: Answers of a task that has not finished yet (the backend may publish them).
_PENDING_STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY")


class NoAnswer(Exception):
    """The head did not answer in time."""


class TaskFailed(Exception):
    """The task raised on the head; the text is Celery's exception summary."""


def usable(broker_url: str, backend_url: str) -> bool:
    """Whether both ends are plain Redis, which is all this module speaks."""
    return all(url.startswith(("redis://", "rediss://", "unix://")) for url in (broker_url, backend_url))


def result_key(task_id: str) -> str:
    return f"celery-task-meta-{task_id}"


def task_message(
    task: str,
    kwargs: dict[str, Any],
    queue: str,
    *,
    task_id: str | None = None,
    expires: float | None = None,
    ignore_result: bool | None = None,
    countdown: float | None = None,
) -> bytes:
    """The kombu/Redis envelope of a Celery protocol-2 task message, as ``app.send_task`` writes it.

    Push it with ``LPUSH <queue>``: kombu's Redis transport keeps a queue's
    messages of the default priority in the list named after the queue.
    ``ignore_result=True`` tells the worker not to store a result nobody reads
    (a ``SET`` and a ``PUBLISH`` per task saved on the node). ``countdown``
    delays the task by that many seconds, as Celery's own option does.
    """
    task_id = task_id or str(uuid.uuid4())
    body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    deadline = None if expires is None else _from_now(expires)
    headers = {
        "lang": "py", "task": task, "id": task_id, "shadow": None,
        "eta": None if countdown is None else _from_now(countdown),
        "expires": deadline, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None, "argsrepr": "()",
        "kwargsrepr": _short(kwargs), "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": ignore_result, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties: dict[str, Any] = {
        "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }
    if expires is not None:
        properties["expiration"] = str(int(expires * 1000))
    envelope = {
        "body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": headers, "properties": properties,
    }
    return json.dumps(envelope).encode()


def push(client: Any, task: str, kwargs: dict[str, Any], queue: str, **options: Any) -> None:
    """Send ``task`` to ``queue`` as ``app.send_task`` would: one ``LPUSH`` of its message.

    ``client`` is a redis-py client or pipeline, or a :mod:`resp` client;
    ``options`` are :func:`task_message`'s.
    """
    client.lpush(queue, task_message(task, kwargs, queue, **options))


def _from_now(seconds: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)).isoformat()


def _short(kwargs: dict[str, Any]) -> str:
    text = repr(kwargs)
    return text if len(text) <= 1024 else text[:1021] + "..."


def call(broker_url: str, backend_url: str, task: str, kwargs: dict[str, Any], queue: str, wait: float) -> Any:
    """Send ``task`` and return its result; NoAnswer after ``wait`` s, TaskFailed if it raised.

    The client subscribes to the result channel before it publishes, so the
    answer cannot slip by; it reads the stored result too, in case the
    backend stored it without publishing.
    """
    broker, backend, pubsub = _connect(broker_url, backend_url, wait + 5)
    task_id = str(uuid.uuid4())
    key = result_key(task_id)
    try:
        pubsub.subscribe(key)
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
        broker = resp.Client(broker_url, timeout)
        backend = broker if backend_url == broker_url else resp.Client(backend_url, timeout)
        return broker, backend, resp.PubSub(backend_url, timeout)
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
