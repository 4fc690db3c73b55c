"""The wire envelope: a Celery protocol-2 task message, built with the standard library alone.

Importing Celery costs a user command about 0.2 s, more than the whole round
trip to the head; and a head or node module that sends many messages saves a
producer checkout and a task-sent event per message by pushing the envelope
itself. The worker cannot tell the difference: the message is JSON, in the
exact envelope kombu's Redis transport writes (``LPUSH <queue>``).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from typing import Any, Protocol


class Pusher(Protocol):
    """A redis-py client or pipeline, or the client's small RESP client: anything with ``lpush``."""

    def lpush(self, name: str, *values: bytes) -> Any: ...


def task_message(
    task: str,
    kwargs: Any,
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
    task_id = task_id or new_id()
    body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    deadline = None if expires is None else _from_now(expires)
    headers: dict[str, object] = {
        "lang": "py", "task": task, "id": task_id, "shadow": None,
        "eta": None if countdown is None else _from_now(countdown),
        "expires": deadline, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None, "argsrepr": "()",
        "kwargsrepr": _short(kwargs), "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": ignore_result, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties: dict[str, Any] = {
        "correlation_id": task_id, "reply_to": new_id(), "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0, "body_encoding": "base64", "delivery_tag": new_id(),
    }
    if expires is not None:
        properties["expiration"] = str(int(expires * 1000))
    envelope = {
        "body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": headers, "properties": properties,
    }
    return json.dumps(envelope).encode()


def push(client: Pusher, task: str, kwargs: dict[str, Any], queue: str, **options: Any) -> None:
    """Send ``task`` to ``queue`` as ``app.send_task`` would: one ``LPUSH`` of its message.

    ``client`` is a redis-py client or pipeline, or a :mod:`resp` client;
    ``options`` are :func:`task_message`'s.
    """
    client.lpush(queue, task_message(task, kwargs, queue, **options))


def new_id() -> str:
    """A random UUID (version 4) in its text form, as ``str(uuid.uuid4())`` writes it.

    Without :mod:`uuid`, whose import (and :mod:`platform`'s) a user command would pay on every run.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _from_now(seconds: float) -> str:
    """``seconds`` from now in ISO 8601 with its UTC offset, as Celery writes ``expires`` and ``eta``."""
    moment = time.time() + seconds
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}+00:00"


def _short(kwargs: dict[str, Any]) -> str:
    text = repr(kwargs)
    return text if len(text) <= 1024 else text[:1021] + "..."
