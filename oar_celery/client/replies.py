"""Waiting for the head's answer to a reservation (``oarsub -r``).

OAR's oarsub keeps a socket open until the reservation is validated. Here the
client keeps the key ``oar:client:<job_id>:<token>`` alive (5-second TTL, refreshed
every second) so that the head's Runner knows someone is listening, and pops
the answer the Runner pushes on the list ``oar:reply:<job_id>:<token>``; the
token came in the submission's answer, so only the submitter knows the names. When the
client dies the key expires and the Runner frags the reservation, as OAR does.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from oar_celery.client.errors import ClientError, reason
from oar_celery.config import mask, settings
from oar_celery.protocol.names import Message, Task, client_key, reply_key

ALIVE_TTL = 5
REFRESH = 1


def wake_runner(client: Any) -> None:
    """Ask Almighty for a cycle now that someone listens, so the Runner answers at once.

    The Runner leaves a new reservation without a listener for a few seconds
    rather than frag it (the client starts listening only once it has its job
    id); without this message the answer would wait for beat's next tick.
    """
    from oar_celery.client import wire
    from oar_celery.client.transport import HEAD_QUEUE

    with contextlib.suppress(Exception):  # best effort: beat's tick answers anyway
        wire.push(client, Task.NOTIFY, {"messages": [Message.SCHEDULING]}, HEAD_QUEUE, expires=60)


def parse_reply(raw: bytes | str) -> dict[str, Any]:
    """Decode the Runner's JSON answer; a garbled one counts as a refusal."""
    try:
        answer = json.loads(raw)
    except (TypeError, ValueError):
        return {"status": "refused", "message": f"unreadable answer from the head: {raw!r}"}
    if not isinstance(answer, dict) or answer.get("status") not in ("granted", "refused"):
        return {"status": "refused", "message": f"unexpected answer from the head: {answer!r}"}
    return answer


def wait_reservation(job_id: int, token: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Block until the head grants or refuses reservation ``job_id``.

    ``token`` is the reply token the head gave in the submission's answer: the
    keys are named after it, so that no other user can take the answer or
    pretend to listen. Returns ``{"status": "granted"|"refused", "start": epoch, "message": str}``.
    ``timeout`` (seconds, ``None`` = wait as long as it takes) bounds the wait.
    """
    import redis

    url = settings().broker_url
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=REFRESH + 5)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        client.set(client_key(job_id, token), "1", ex=ALIVE_TTL)
        wake_runner(client)
        while deadline is None or time.monotonic() < deadline:
            client.set(client_key(job_id, token), "1", ex=ALIVE_TTL)
            item = client.blpop([reply_key(job_id, token)], timeout=REFRESH)
            if item is not None:
                client.delete(client_key(job_id, token))
                return parse_reply(item[1])
    except redis.RedisError as exc:
        raise ClientError(f"cannot reach the broker at {mask(url)} ({reason(exc)})") from exc
    finally:
        client.close()
    raise ClientError(f"no answer about reservation {job_id} within {timeout:g}s")
