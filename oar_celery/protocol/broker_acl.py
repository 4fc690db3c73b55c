"""Roles on the broker: one Redis 7 ACL user per role, each allowed only the keys its work needs.

Anybody who can write a node's queue runs commands as any user on that node,
so the broker is split into roles (``oar-celery acl`` prints the file,
``oar-celery up --auth`` runs a Redis of its own with it):

- ``oar-head``: everything (the head worker, beat, Flower, the REST API, admins' commands);
- ``oar-node-<host>``: takes its own queue (``oar.node.<host>``, its priority lists, kombu's
  bindings and unacknowledged keys of its own), queues reports (``oar:reports`` and the head's
  queue, through the Lua script of :mod:`.bus`), its replay nonces ``oar:seen:<host>:*`` and the
  refusal counters; it cannot read another node's queue nor the head's;
- ``oar-user`` (and ``default``, the anonymous connection, unless turned off): pushes requests
  on ``oar.head`` without reading it, and reads answers under names nobody else can learn:
  Celery's ``celery-task-meta-<uuid4>`` and the reservation replies ``oar:reply:<job>:<token>``.
  No command that lists keys, channels or clients (``KEYS``, ``SCAN``, ``PUBSUB``,
  ``PSUBSCRIBE``, ``MONITOR``, ``CLIENT LIST``) is granted, so an answer's name cannot be found,
  only guessed (122 random bits, 128 for a token).

Each rule is a Redis 7 selector, ``(commands keys)``: a command is allowed only on the keys of its
own selector, so ``LPUSH`` on the head's queue does not give ``LRANGE`` of it, and ``BRPOP`` of
one's own queue gives nothing on another's. Passwords are written as SHA-256 hashes (``#...``):
the ACL file holds no secret.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from oar_celery.protocol.names import HEAD_QUEUE, Key, node_queue, unacked_keys

HEAD_USER = "oar-head"
SUBMIT_USER = "oar-user"
ANONYMOUS = "default"

#: What every connection does before its first command (redis-py and kombu on connect).
_CONNECTION = "+ping +select +hello +auth +quit +reset +client|setname +client|getname +client|id"
#: A character no host name holds: it tells ``oar.node.node1<sep><priority>`` from ``oar.node.node10``.
_NOT_IN_A_NAME = "[^-a-zA-Z0-9._]"
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Kombu's exchanges a node worker binds to: its own queue's, remote control, its replies, events.
_CONTROL_EXCHANGES = ("celery.pidbox", "reply.celery.pidbox", "celeryev")


def node_user(host: str) -> str:
    """The broker user of compute node ``host``."""
    return f"oar-node-{host}"


@dataclass(frozen=True)
class BrokerUser:
    """One ``user`` line of the ACL file: a name, a password (None: none needed), its rules."""

    name: str
    password: str | None
    rules: list[str] = field(default_factory=list)

    def line(self) -> str:
        secret = "nopass" if self.password is None else "#" + hashlib.sha256(self.password.encode()).hexdigest()
        return " ".join(["user", self.name, "on", secret, "resetkeys", "resetchannels", "-@all", _CONNECTION,
                         *self.rules])


def head(password: str) -> BrokerUser:
    return BrokerUser(HEAD_USER, password, ["~*", "&*", "+@all"])


def check_host(host: str) -> str:
    """A node name fit for key patterns (a glob character would widen its rights to other nodes)."""
    if not _HOST.match(host):
        raise ValueError(f"{host!r} is not a node name (letters, digits, '.', '_', '-')")
    return host


def node(host: str, password: str, db: int = 0) -> BrokerUser:
    """A compute node: its own queue and bookkeeping, reports, its nonces; nothing of the others'.

    ``db`` is the broker's database number: kombu's remote control channels are
    named after it (``/<db>.celery.pidbox``), and Redis allows a pattern
    subscription only to a channel pattern written out in full.
    """
    queue = node_queue(check_host(host))
    bindings = " ".join(f"~_kombu.{table}.{name}" for name in (queue, *_CONTROL_EXCHANGES)
                        for table in ("binding", "binding_permanent"))
    unacked = " ".join(f"~{key}" for key in unacked_keys(host))
    pidbox = f"node@{host}.celery.pidbox"
    script_keys = " ".join(f"~{key}" for key in (Key.PENDING, Key.QUEUED, HEAD_QUEUE, Key.QUEUED_REPORTS))
    return BrokerUser(node_user(host), password, [
        # its queue and its priority lists (kombu's 'oar.node.<host>\x06\x16<priority>')
        f"(~{queue} ~{queue}{_NOT_IN_A_NAME}{_NOT_IN_A_NAME}[0-9] +brpop +lpush +rpush +llen)",
        # its remote control queue (the worker is node@<host>), which expires when unused
        f"(~{pidbox} ~{pidbox}{_NOT_IN_A_NAME}{_NOT_IN_A_NAME}[0-9] +llen +pexpire +brpop +lpush +rpush +del)",
        f"({bindings} +sadd +smembers +srem +scard +exists +del)",
        # kombu's expiring bindings (remote control's queues): its refresh and sweep scripts
        f"({bindings} ~_kombu.binding_deadlines +eval +evalsha)",
        "(~_kombu.binding_deadlines +zadd +zrangebyscore +zrem)",
        "+time +script|exists +script|load",
        f"({unacked} +hset +hget +hdel +hgetall +zadd +zrem +zrevrangebyscore +zrangebyscore +set +get +del"
        " +watch +unwatch +multi +exec +discard)",
        # reports and answers: the script of bus.queue_reports (each command in it checked again
        # against these rules), Finaud's answers: pushed, never read
        f"({script_keys} +eval +evalsha)",
        f"(%W~{HEAD_QUEUE} %W~{Key.QUEUED_REPORTS} %W~{Key.PENDING} %W~{Key.FINAUD_ANSWERS} +lpush +rpush +sadd)",
        f"(~{Key.QUEUED} +set +ttl +del)",
        # replay nonces and refusal counters of signed messages
        f"(~oar:seen:{host}:* +set +exists)",
        f"(~{Key.REFUSED} +hincrby)",
        # the job-shell services' addresses: its own published, the others' read (oarsh across the job's
        # nodes). A hash's fields share its key's rights, so a node could write another's address: the
        # client would then meet a certificate without that node's name, and refuse it (TLS, host checked)
        f"(~{Key.JOBSHELL_SERVICES} +hset +hget +hgetall)",
        # remote control and its replies (Flower, status); events when Flower asks for them, sent but
        # never heard (a task-received event shows the task's arguments)
        "(%W~*.reply.celery.pidbox +lpush)",
        f"(&/{db}.celery.pidbox +subscribe +psubscribe +unsubscribe +punsubscribe)",
        f"(&/{db}.celeryev/* +publish)",
    ])


def submitter(name: str = SUBMIT_USER, password: str | None = None) -> BrokerUser:
    """Users: push requests to the head, read answers whose unguessable name they were told."""
    return BrokerUser(name, password, [
        f"(%W~{HEAD_QUEUE} +lpush)",
        "(~celery-task-meta-* +get +del)",
        "&celery-task-meta-* +subscribe +unsubscribe",
        "(~oar:reply:*:* +blpop +lpop +del)",
        "(~oar:client:*:* +set +del)",
    ])


def anonymous_off() -> str:
    return f"user {ANONYMOUS} off resetkeys resetchannels -@all"


def personal_user(name: str) -> str:
    """The broker user of one person, when a site gives each their own (``oar-celery acl --users``)."""
    return f"oar-user-{check_host(name)}"


def acl_file(hosts: Iterable[str], passwords: Mapping[str, str], *, db: int = 0, anonymous: bool = True,
             people: Iterable[str] = ()) -> str:
    """The whole ACL file of a cluster: ``passwords`` maps each user name to its password.

    ``people`` get a broker user each, with the users' rules: Redis's ACL log
    then names who was refused, and one person's access is taken back alone.
    """
    users = [head(passwords[HEAD_USER]), submitter(SUBMIT_USER, passwords[SUBMIT_USER])]
    users += [submitter(personal_user(name), passwords[personal_user(name)]) for name in people]
    users += [node(host, passwords[node_user(host)], db) for host in hosts]
    lines = [user.line() for user in users]
    lines.append(submitter(ANONYMOUS).line() if anonymous else anonymous_off())
    return "\n".join(lines) + "\n"


def new_passwords(hosts: Iterable[str], people: Iterable[str] = ()) -> dict[str, str]:
    """A random password for the head, the users' role, every person given one and every node."""
    names = [HEAD_USER, SUBMIT_USER, *(personal_user(name) for name in people),
             *(node_user(check_host(host)) for host in hosts)]
    return {name: secrets.token_urlsafe(32) for name in names}


def url_for(url: str, user: str, password: str | None) -> str:
    """``url`` (``redis://host:port/db``) with this user's credentials in it."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if password is None:
        return urlunsplit(parts._replace(netloc=host))
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))
