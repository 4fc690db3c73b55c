"""``oarqueue``, ``oarnotify`` and ``oaraccounting`` on the head: the admin's requests on queues and usage.

Queues change only here, in one transaction each, and only for root or the
admin user: a queue disabled (``notActive``) keeps its jobs, which the
scheduler leaves waiting until it is enabled again; a queue is removed only
when no unfinished job is in it. ``oarnotify TAG`` sends Almighty one of its
messages. ``oaraccounting`` catches up the ``accounting`` table (or empties
it, or drops its old windows).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import CURRENT_STATES, Job, Queue
from oar_celery.db.session import session_scope
from oar_celery.head.lib import accounting
from oar_celery.head.lib.errors import Refused
from oar_celery.protocol.bus import notify
from oar_celery.protocol.messages import ErrorAnswer, LinesAnswer
from oar_celery.protocol.names import Message

logger = logging.getLogger(__name__)

ACTIVE, NOT_ACTIVE = "Active", "notActive"
QUEUE_ACTIONS = ("list", "enable", "disable", "enable_all", "disable_all", "add", "change", "remove")


def _admin(user: str, what: str) -> None:
    if not settings().is_admin(user):
        raise Refused(f"only root or {settings().admin_user} may {what}, not {user}")


def _queue(session: Session, name: str | None) -> Queue:
    queue = session.get(Queue, name or "")
    if queue is None:
        raise Refused(f"unknown queue '{name}'")
    return queue


def queues(user: str, action: str, name: str | None = None, priority: int | None = None,
           policy: str | None = None) -> list[str]:
    """One ``oarqueue`` request; the lines to print. Raises Refused."""
    if action not in QUEUE_ACTIONS:
        raise Refused(f"unknown queue action '{action}'")
    _admin(user, "change queues" if action != "list" else "list queues")
    with session_scope() as session:
        lines = _ACTIONS[action](session, name, priority, policy)
    if action != "list":
        logger.info("queues: %s %s by %s", action, name or "", user)
        notify([Message.SCHEDULING])
    return lines


def _list(session: Session, *_: Any) -> list[str]:
    lines: list[str] = []
    for queue in session.scalars(select(Queue).order_by(Queue.priority.desc(), Queue.queue_name)):
        lines += [queue.queue_name, f"priority = {queue.priority}", f"policy = {queue.scheduler_policy}",
                  f"state = {queue.state}"]
    return lines


def _set_state(state: str) -> Any:
    def apply(session: Session, name: str | None, *_: Any) -> list[str]:
        _queue(session, name).state = state
        return [f"queue {name} is {state}"]
    return apply


def _set_all(state: str) -> Any:
    def apply(session: Session, *_: Any) -> list[str]:
        session.execute(update(Queue).values(state=state))
        return [f"every queue is {state}"]
    return apply


def _add(session: Session, name: str | None, priority: int | None, policy: str | None) -> list[str]:
    if not name or not name.replace("_", "").replace("-", "").isalnum() or len(name) > 100:
        raise Refused(f"bad queue name '{name}': letters, digits, '-' and '_' only")
    if session.get(Queue, name) is not None:
        raise Refused(f"queue '{name}' exists already")
    session.add(Queue(queue_name=name, priority=priority or 0, scheduler_policy=policy or "kamelot", state=ACTIVE))
    return [f"queue {name} added (priority {priority or 0}, policy {policy or 'kamelot'})"]


def _change(session: Session, name: str | None, priority: int | None, policy: str | None) -> list[str]:
    queue = _queue(session, name)
    if priority is not None:
        queue.priority = priority
    if policy:
        queue.scheduler_policy = policy
    return [f"queue {name}: priority {queue.priority}, policy {queue.scheduler_policy}"]


def _remove(session: Session, name: str | None, *_: Any) -> list[str]:
    _queue(session, name)
    unfinished = session.scalar(
        select(func.count()).select_from(Job).where(Job.queue_name == name, Job.state.in_(CURRENT_STATES))
    )
    if unfinished:
        raise Refused(f"queue '{name}' still has {unfinished} unfinished job(s)")
    session.execute(delete(Queue).where(Queue.queue_name == name))
    return [f"queue {name} removed"]


_ACTIONS = {
    "list": _list, "enable": _set_state(ACTIVE), "disable": _set_state(NOT_ACTIVE),
    "enable_all": _set_all(ACTIVE), "disable_all": _set_all(NOT_ACTIVE),
    "add": _add, "change": _change, "remove": _remove,
}


def almighty_tag(user: str, tag: str) -> list[str]:
    """``oarnotify TAG``: one of Almighty's messages, from an admin."""
    _admin(user, "notify Almighty")
    known = {message.value.lower(): message for message in Message}
    message = known.get(tag.strip().lower())
    if message is None:
        raise Refused(f"unknown tag '{tag}' (one of {', '.join(m.value for m in Message)})")
    notify([message])
    return [f"Almighty notified: {message.value}"]


def usage(user: str, reinitialize: bool = False, delete_before: int | None = None) -> list[str]:
    """``oaraccounting``: catch up, ``--reinitialize``, or ``--delete-before SECONDS`` (ago)."""
    _admin(user, "change the accounting")
    with session_scope() as session:
        if reinitialize:
            accounting.reinitialize(session)
            return ["Deleting all records from the accounting table..."]
        if delete_before is not None:
            if delete_before < 0:
                raise Refused("--delete-before takes a number of seconds >= 0")
            from oar_celery.db.session import now

            removed = accounting.delete_before(session, int(now()) - delete_before)
            return [f"Deleting records older than {delete_before} seconds ago... {removed} window(s) removed"]
        done = accounting.account_all(session)
    return [f"{len(done)} job(s) accounted"]


def _answer(call: Any, *args: Any, **kwargs: Any) -> LinesAnswer | ErrorAnswer:
    try:
        return {"results": call(*args, **kwargs)}
    except Refused as refusal:
        return {"error": str(refusal)}


def queue_task(user: str, action: str, name: str | None = None, priority: int | None = None,
               policy: str | None = None) -> LinesAnswer | ErrorAnswer:
    return _answer(queues, user, str(action), name, None if priority is None else int(priority), policy)


def notify_task(user: str, tag: str) -> LinesAnswer | ErrorAnswer:
    return _answer(almighty_tag, user, str(tag))


def accounting_task(
    user: str, reinitialize: bool = False, delete_before: int | None = None
) -> LinesAnswer | ErrorAnswer:
    return _answer(usage, user, bool(reinitialize), None if delete_before is None else int(delete_before))
