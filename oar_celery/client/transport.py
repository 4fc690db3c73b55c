"""Sending a request to the head worker and waiting for its answer.

Celery is imported inside the functions: a command that fails its argument
checks, or only reads the database, never pays for it; with a Redis broker and
backend it is not imported at all (:mod:`oar_celery.client.wire`). Requests carry an
expiry equal to the client's timeout, so a head that comes back after the
client gave up drops the request instead of acting on it behind the user's back.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from oar_celery.client.errors import BrokerUnreachable, ClientError, NeverSent, NoAnswer, reason
from oar_celery.config import mask, settings

HEAD_QUEUE = "oar.head"

#: Give up publishing quickly: a user is waiting at the terminal.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def broker_text() -> str:
    """The broker URL as it may be shown to users (password hidden)."""
    return mask(settings().broker_url)


def _unreachable(exc: BaseException) -> ClientError:
    return BrokerUnreachable(f"cannot reach the broker at {broker_text()} ({reason(exc)})")


def probe(url: str) -> None:
    """Fail at once if a Redis server is down, before Celery's own reconnection loops.

    Celery's Redis result backend retries for seconds before it gives up; a
    user at a terminal deserves the answer in milliseconds.
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ClientError(f"cannot reach the broker at {mask(url)} ({reason(exc)})") from exc
    finally:
        client.close()


def call(task_name: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run ``task_name`` on the head worker and return its answer dict.

    Raises :class:`ClientError` when the broker cannot be reached, when no
    answer comes in time, or when the answer is not a dict.
    """
    config = settings()
    wait = config.client_timeout if timeout is None else timeout
    from oar_celery.client import wire

    if wire.usable(config.broker_url, config.backend):
        return _call_wire(task_name, kwargs, wait)
    try:
        probe(config.broker_url)
        if config.backend != config.broker_url:
            probe(config.backend)
    except ClientError as exc:
        raise NeverSent(str(exc)) from exc
    try:
        from celery.exceptions import TimeoutError as CeleryTimeout

        from oar_celery.celery_app import app
    except ImportError as exc:  # pragma: no cover - broken installation
        raise ClientError(f"cannot load the messaging library ({exc})") from exc
    try:
        result = app.send_task(
            task_name,
            kwargs=kwargs,
            queue=HEAD_QUEUE,
            expires=wait,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )
    except Exception as exc:  # kombu's OperationalError, redis' ConnectionError, OSError
        raise _unreachable(exc) from exc
    try:
        answer = result.get(timeout=wait, propagate=False, disable_sync_subtasks=False)
    except CeleryTimeout as exc:
        raise NoAnswer(
            f"no answer from the head worker within {wait:g}s (is it running? broker {broker_text()})"
        ) from exc
    except Exception as exc:
        raise _unreachable(exc) from exc
    finally:
        _forget(result)
    return _check_answer(task_name, result, answer)


def _call_wire(task_name: str, kwargs: dict[str, Any], wait: float) -> dict[str, Any]:
    """The same call without importing Celery (nor redis-py, on a plain URL): see :mod:`oar_celery.client.wire`."""
    from oar_celery.client import wire

    config = settings()
    try:
        answer = wire.call(config.broker_url, config.backend, task_name, kwargs, HEAD_QUEUE, wait)
    except wire.NoAnswer as exc:
        raise NoAnswer(
            f"no answer from the head worker within {wait:g}s (is it running? broker {broker_text()})"
        ) from exc
    except wire.TaskFailed as exc:
        raise ClientError(f"the head worker failed on {task_name}: {exc}") from exc
    except wire.NotSent as exc:
        cause = exc.__cause__ or exc
        raise NeverSent(f"cannot reach the broker at {broker_text()} ({reason(cause)})") from exc
    except Exception as exc:
        if not isinstance(exc, OSError) and not _is_redis_error(exc):
            raise
        raise _unreachable(exc) from exc
    if not isinstance(answer, dict):
        raise ClientError(f"unexpected answer from the head worker to {task_name}: {answer!r}")
    return answer


def _is_redis_error(exc: BaseException) -> bool:
    """A redis-py error, without importing redis-py when the call did not use it."""
    redis = sys.modules.get("redis")
    return redis is not None and isinstance(exc, redis.RedisError)


def _forget(result: Any) -> None:
    """Free the result in the backend; failing to is harmless."""
    with contextlib.suppress(Exception):
        result.forget()


def _check_answer(task_name: str, result: Any, answer: Any) -> dict[str, Any]:
    if isinstance(answer, BaseException) or getattr(result, "failed", lambda: False)():
        raise ClientError(f"the head worker failed on {task_name}: {answer}")
    if not isinstance(answer, dict):
        raise ClientError(f"unexpected answer from the head worker to {task_name}: {answer!r}")
    return answer


def answer_error(answer: dict[str, Any]) -> str | None:
    """The refusal carried by an answer, if any."""
    error = answer.get("error")
    return str(error) if error else None
