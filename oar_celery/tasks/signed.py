"""Task bases that check a message's signature before running it (:mod:`oar_celery.protocol.signing`).

:class:`SignedTask` is every node task's base: where the node has its key,
a task runs only if the head signed it for this node, recently, and never
before. :class:`FromNodeTask` is the base of the head's tasks a node sends
(a ping's answer, a resume, the one-report tasks): where the head has keys,
it runs only if the node the message names signed it. Anything else is
logged with its origin, counted in ``oar:refused`` and answered with an
error, never run.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from oar_celery.config import settings
from oar_celery.node import node_hostname
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.signing import (
    HEAD,
    TASK_FIELD,
    Refused,
    Signature,
    claim,
    claim_note,
    claimed_signer,
    head_keyring,
    node_key,
    refuse,
    task_subject,
    verify,
)


def _kind(task: str) -> str:
    """A task's short name for the refusal counter: ``oar.node.launch`` → ``launch``."""
    return task.rsplit(".", 1)[-1]


def _checked(key: bytes, signature: object, subject: str, kwargs: dict[str, Any], args: tuple[Any, ...],
             signer: str, scope: str) -> Signature:
    """The message's signature, checked for its subject, signer and freshness, its nonce claimed."""
    if args:
        raise Refused("positional arguments are never signed")
    window = settings().signature_window
    checked = verify(key, signature, subject, kwargs, window=window)
    if checked["signer"] != signer:
        raise Refused(f"signed by {checked['signer']}, not {signer}")
    if not claim(broker_redis(), scope, checked, window):
        raise Refused("replayed: this message was already received")
    return checked


def _detail(task: Task, origin: str, signature: object) -> str:
    """The sending process the message's envelope names (``gen<pid>@<host>``, the forger may have lied),
    and the signer it claimed when that is no known one."""
    sent_by = f"sent by {str(getattr(task.request, 'origin', None) or '?')[:100]}"
    return f"{sent_by}, {claim_note(signature)}" if origin == "unknown" else sent_by


class SignedTask(Task):
    """A node task: run only when the head signed it for this node (where the node has its key)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = kwargs.pop(TASK_FIELD, None)
        host = node_hostname()
        key = node_key(host)
        if key is not None:
            try:
                _checked(key, signature, task_subject(self.name, host), kwargs, args, HEAD, host)
            except Refused as why:
                origin = claimed_signer(signature, lambda signer: signer == HEAD)
                refuse(broker_redis(), _kind(self.name), origin, str(why), host, _detail(self, origin, signature))
                return {"error": f"refused: {why}"}
        return super().__call__(*args, **kwargs)


class FromNodeTask(Task):
    """A head task a node sends: run only when the node it names signed it (where the head has keys)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = kwargs.pop(TASK_FIELD, None)
        keys = head_keyring()
        if keys.enabled:
            host = str(kwargs.get("host") or "")
            try:
                key = keys.node(host)
                if key is None:
                    raise Refused(f"no key for node {host!r}")
                _checked(key, signature, task_subject(self.name, HEAD), kwargs, args, host, host)
            except Refused as why:
                origin = claimed_signer(signature, lambda signer: keys.node(signer) is not None)
                refuse(broker_redis(), _kind(self.name), origin, str(why), HEAD, _detail(self, origin, signature))
                return None
        return super().__call__(*args, **kwargs)
