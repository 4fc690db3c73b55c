"""The head's one way to send a task: to a node's queue or its own, in one round trip, after commit.

A message that leaves before its transaction commits can reach a node that
then finds the database saying otherwise (a kill for a job that is still
``Running`` on a rollback, a resume for a job not yet ``Resuming``). So a
module that decides to send within a transaction hands its messages to
:func:`after_commit`, and they leave only once the decision is committed;
one sent outside a transaction goes with :func:`send`.

On a Redis broker a message is one ``LPUSH`` of Celery's own envelope
(:mod:`oar_celery.protocol.wire`), all of a call's messages in one pipeline:
``app.send_task`` would take a producer from Celery's pool and send a
task-sent event for each. Another broker gets Celery's ``send_task``.
Failing to send is logged, never raised: the database is the truth, and the
Runner, Leon and Finaud send again what was lost (launches, kills, pings).

Every task for a node is signed here, with that node's key, where the keys
exist (:mod:`oar_celery.protocol.signing`): the node runs nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.names import HEAD_QUEUE, node_queue
from oar_celery.protocol.signing import HEAD, TASK_FIELD, Keyring, head_keyring, sign, task_subject
from oar_celery.protocol.wire import push

logger = logging.getLogger(__name__)

_OUTBOX = "oar_outbox"


@dataclass(frozen=True)
class Outgoing:
    """One task message: where it goes, what it asks, how long it stays worth running."""

    queue: str
    task: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None
    countdown: float | None = None


def to_node(host: str, task: str, expires: float | None = None, **kwargs: Any) -> Outgoing:
    """A task for node ``host``'s worker."""
    return Outgoing(node_queue(host), task, kwargs, expires)


def to_head(task: str, countdown: float | None = None, **kwargs: Any) -> Outgoing:
    """A task for the head worker itself (Judas's notifications, a delayed message)."""
    return Outgoing(HEAD_QUEUE, task, kwargs, countdown=countdown)


def send(messages: Iterable[Outgoing], *, pipe: redis.client.Pipeline | None = None) -> None:
    """Send now; with ``pipe``, add the pushes to the caller's pipeline, which executes it."""
    messages = list(messages)
    if not messages:
        return
    if not settings().broker_url.startswith(("redis://", "rediss://", "unix://")):
        _send_with_celery(messages)
        return
    own = pipe is None
    pipe = pipe if pipe is not None else broker_redis().pipeline(transaction=False)
    keys = head_keyring()
    for message in messages:
        push(pipe, message.task, signed(message, keys), message.queue, expires=message.expires,
             countdown=message.countdown, ignore_result=True)
    if own:
        try:
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("%d message(s) not sent (%s); they will be sent again", len(messages), error)


_NODE_PREFIX = node_queue("")


def signed(message: Outgoing, keys: Keyring) -> dict[str, Any]:
    """The message's kwargs, with the head's signature under its node's key if it goes to a node."""
    if not keys.enabled or not message.queue.startswith(_NODE_PREFIX):
        return message.kwargs
    host = message.queue[len(_NODE_PREFIX):]
    key = keys.node(host)
    if key is None:
        logger.error("no key for node %s (oar-celery keys --nodes %s): %s sent unsigned, it will be refused",
                     host, host, message.task)
        return message.kwargs
    return {**message.kwargs, TASK_FIELD: sign(key, HEAD, task_subject(message.task, host), message.kwargs)}


def after_commit(session: Session, messages: Iterable[Outgoing]) -> None:
    """Send once ``session``'s transaction has committed; nothing if it rolls back."""
    outbox: list[Outgoing] | None = session.info.get(_OUTBOX)
    if outbox is None:
        outbox = session.info[_OUTBOX] = []
        event.listen(session, "after_commit", _flush)
        event.listen(session, "after_rollback", _forget)
    outbox.extend(messages)


def _flush(session: Session) -> None:
    send(session.info.pop(_OUTBOX, []))
    session.info[_OUTBOX] = []


def _forget(session: Session) -> None:
    session.info[_OUTBOX] = []


def _send_with_celery(messages: list[Outgoing]) -> None:
    from oar_celery.celery_app import app

    keys = head_keyring()
    for message in messages:
        try:
            app.send_task(message.task, kwargs=signed(message, keys), queue=message.queue, expires=message.expires,
                          countdown=message.countdown)
        except Exception as error:  # noqa: BLE001 - any broker failure: the message is sent again later
            logger.warning("%s to %s not sent: %s", message.task, message.queue, error)
