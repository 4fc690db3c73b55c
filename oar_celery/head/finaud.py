"""Finaud: checks that every ``Alive`` and ``Suspected`` node still takes work.

A live process is not enough: a Celery worker can keep running after a broker
reconnect and never consume again. So the check travels the node's own
queue: each round sends ``oar.node.ping`` to ``oar.node.<host>``, and the
node must answer with ``oar.finaud.answer`` before the next round once
``OAR_FINAUD_TIMEOUT`` has passed. A node that did not answer is marked in
``oar:finaud:missed`` until it answers again (``oar-celery status`` reads it) and goes
``Suspected`` (event ``FINAUD_ERROR``); a node Finaud suspected that answers
again goes back ``Alive`` (``FINAUD_RECOVER``). Nodes suspected for other
reasons stay so until an admin says otherwise. A node an admin is
withdrawing (``Absent``/``Dead`` waiting for its jobs) that stops answering
gets its jobs ended at once, after which its request applies.

The ping carries the ids of the jobs the head thinks run on the node; the
answer tells their status, so an end report lost on the way is recovered.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from redis import Redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oar_celery.db.models import STARTED_STATES, AssignedResource, Job, Resource
from oar_celery.db.session import session_scope
from oar_celery.head.lib import sender, trust
from oar_celery.head.lib.context import Context
from oar_celery.head.lib.failures import Failures, fail_jobs_on
from oar_celery.head.lib.hosts import add_head_side_hosts
from oar_celery.head.lib.transitions import add_event
from oar_celery.protocol.bus import broker_redis, notify, queue_reports
from oar_celery.protocol.messages import EndedReport, JobStatus, Report, ended_report
from oar_celery.protocol.names import Key, Task, seen_key
from oar_celery.protocol.signing import (
    HEAD,
    TASK_FIELD,
    Keyring,
    Refused,
    claimed_signer,
    head_keyring,
    nonce_ttl,
    refuse,
    task_subject,
    verify,
)
from oar_celery.protocol.states import ResourceState

logger = logging.getLogger(__name__)

SENT = Key.FINAUD_SENT
ANSWERED = Key.FINAUD_ANSWERED
MISSED = Key.FINAUD_MISSED
ANSWERS = Key.FINAUD_ANSWERS


class Ping(TypedDict):
    """What ``SENT`` holds for a host: the ping's token and when it was sent."""

    token: str
    at: float


def run_finaud(context: Context) -> None:
    """One round: judge last round's pings, then ping every watched host."""
    take_answers(context)
    marks = Marks.read(context.redis)
    with session_scope() as session:
        hosts = _checked_hosts(session)
        jobs = _jobs_by_first_host(session)
        changed, failures = judge(context, session, hosts, marks)
    failures.after_commit()
    send_pings(context, hosts, jobs, marks)
    if changed:
        notify(["ChState"] + (["Term"] if failures.job_ids else []))


@dataclass
class Marks:
    """Last round's pings (host → token and time sent) and the tokens the nodes answered with.

    Read once per round, in one round trip, for both judging and sending: on
    1,000 nodes each read is two hashes of 1,000 fields.
    """

    sent: dict[str, Ping]
    answered: dict[str, str]

    @classmethod
    def read(cls, client: Redis) -> Marks:
        sent, answered = client.pipeline(transaction=False).hgetall(SENT).hgetall(ANSWERED).execute()
        return cls({k.decode(): json.loads(v) for k, v in sent.items()},
                   {k.decode(): v.decode() for k, v in answered.items()})

    def waiting(self, host: str, at: float, timeout: float) -> bool:
        """Whether the host's last ping is unanswered and still within its time to answer."""
        last = self.sent.get(host)
        return last is not None and self.answered.get(host) != last["token"] and at - last["at"] <= timeout


@dataclass
class Watched:
    """What Finaud may do about one host, from its resources' states.

    A resource still ``Alive`` can be suspected; one that Finaud suspected
    (``finaud_decision = YES``) can be brought back, while those suspected
    for other reasons are left to the admin. A resource an admin is
    withdrawing (``Absent``/``Dead`` waiting for its jobs) is still watched:
    if its node dies, its jobs end now rather than hang.
    """

    alive: bool = False
    ours: bool = False
    withdrawing: list[int] = field(default_factory=list)


def _checked_hosts(session: Session) -> dict[str, Watched]:
    """The hosts Finaud watches: those with ``Alive`` or ``Suspected`` resources."""
    hosts: dict[str, Watched] = {}
    rows = session.execute(
        select(
            Resource.network_address, Resource.resource_id, Resource.state, Resource.finaud_decision,
            Resource.next_state,
        ).where(
            Resource.state.in_((ResourceState.ALIVE, ResourceState.SUSPECTED)),
            Resource.next_state.in_(("UnChanged", ResourceState.ABSENT, ResourceState.DEAD))
        )
    )
    for host, resource_id, state, decision, next_state in rows:
        watched = hosts.setdefault(host, Watched())
        if next_state != "UnChanged":
            watched.withdrawing.append(resource_id)
        elif state == ResourceState.ALIVE:
            watched.alive = True
        elif decision == "YES":
            watched.ours = True
    return hosts


def _jobs_by_first_host(session: Session) -> dict[str, list[int]]:
    """The started jobs, by the host their supervisor runs on (the first, in resource order; for a cosystem
    or deploy job, its configured host)."""
    rows = session.execute(
        select(Job.job_id, Resource.network_address)
        .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
        .join(Resource, Resource.resource_id == AssignedResource.resource_id)
        .where(Job.state.in_(STARTED_STATES), AssignedResource.assigned_resource_index == "CURRENT")
        .order_by(Job.job_id, Resource.resource_id)
    )
    first: dict[int, list[str]] = {}
    for job_id, host in rows:
        first.setdefault(job_id, [host])
    add_head_side_hosts(session, first)
    by_host: dict[str, list[int]] = defaultdict(list)
    for job_id, hosts in first.items():
        by_host[hosts[0]].append(job_id)
    return by_host


def judge(context: Context, session: Session, hosts: dict[str, Watched], marks: Marks) -> tuple[bool, Failures]:
    """Compare last round's pings with their answers; whether anything changed, and the jobs ended."""
    client = context.redis
    sent, answered = marks.sent, marks.answered
    timeout = context.settings.finaud_timeout
    changed = False
    failures = Failures()
    for host, watched in hosts.items():
        ping = sent.get(host)
        if ping is None:
            continue
        ok = answered.get(host) == ping["token"]
        late = context.now() - ping["at"] > timeout
        if not ok and late:
            client.hset(MISSED, host, repr(ping["at"]))
            suspected = watched.alive and _suspect(session, host)
            ended = fail_jobs_on(session, watched.withdrawing)
            failures.kills.update(ended.kills)
            if suspected or ended.job_ids:
                add_event(session, "FINAUD_ERROR", 0, f"node {host} did not answer its health check", hosts=[host])
                changed = True
        elif ok and watched.ours and _recover(session, host):
            add_event(session, "FINAUD_RECOVER", 0, f"node {host} answers again", hosts=[host])
            changed = True
    return changed, failures


def _suspect(session: Session, host: str) -> bool:
    """Ask for ``Suspected`` on the host's ``Alive`` resources that have no other request."""
    rows = session.execute(
        update(Resource)
        .where(Resource.network_address == host, Resource.state == ResourceState.ALIVE,
               Resource.next_state == "UnChanged")
        .values(next_state=ResourceState.SUSPECTED, finaud_decision="YES")
        .returning(Resource.resource_id)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        logger.warning("finaud: node %s did not answer: Suspected", host)
    return bool(rows)


def _recover(session: Session, host: str) -> bool:
    """Ask for ``Alive`` on the host's resources that Finaud itself suspected."""
    rows = session.execute(
        update(Resource)
        .where(
            Resource.network_address == host, Resource.state == ResourceState.SUSPECTED,
            Resource.finaud_decision == "YES", Resource.next_state == "UnChanged",
        )
        .values(next_state=ResourceState.ALIVE, finaud_decision="NO")
        .returning(Resource.resource_id)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        logger.warning("finaud: node %s answers again: Alive", host)
    return bool(rows)


def send_pings(context: Context, hosts: dict[str, Watched], jobs: dict[str, list[int]], marks: Marks) -> None:
    """One ping per host, unless the last one is still within its time to answer.

    Every ping of the round and its ``SENT`` mark go in one Redis pipeline,
    as Celery's own messages (:mod:`oar_celery.head.lib.sender`):
    ``app.send_task`` costs a round trip and a task-sent event per host,
    which on 200 nodes made a round cost the head a tenth of a second.
    """
    timeout = context.settings.finaud_timeout
    expires = max(timeout * 4, 30)
    at = context.now()
    marked: dict[str | bytes, str] = {}
    pings: list[sender.Outgoing] = []
    for host in hosts:
        if marks.waiting(host, at, timeout):
            continue
        token = uuid.uuid4().hex
        marked[host] = json.dumps({"token": token, "at": at})
        pings.append(sender.to_node(host, Task.NODE_PING, expires, token=token, job_ids=jobs.get(host, [])))
    if not pings:
        return
    pipe = context.redis.pipeline(transaction=False)
    pipe.hset(SENT, mapping=marked)  # one command for the round's marks, not one per host
    sender.send(pings, pipe=pipe)
    pipe.execute()


class Answer(TypedDict):
    """A node's answer to its ping: the ping's token and the states of the jobs the ping named."""

    host: str
    token: str
    jobs: dict[str, JobStatus | str]


def take_answers(context: Context) -> int:
    """Take every answer the nodes pushed since the last round, check each, record them in one batch.

    An answer counts only when the node it names signed it (where the head
    has keys), recently and once: the checks of ``oar.finaud.answer``'s task
    (:mod:`oar_celery.tasks.signed`), their nonces claimed in one round trip.
    The number of answers recorded.
    """
    client = context.redis
    raw, _ = client.pipeline(transaction=True).lrange(ANSWERS, 0, -1).delete(ANSWERS).execute()
    if not raw:
        return 0
    keys = head_keyring()
    window = context.settings.signature_window
    checked, refused = checked_answers(raw, keys, window, context.now())
    if keys.enabled and checked:
        pipe = client.pipeline(transaction=False)
        for _, signature in checked:
            pipe.set(seen_key(signature["host"], signature["nonce"]), b"1", nx=True, ex=nonce_ttl(window))
        claimed = pipe.execute()
        refused += [(a["host"], a["host"], "replayed: this message was already received")
                    for (a, _), fresh in zip(checked, claimed, strict=True) if not fresh]
        checked = [pair for pair, fresh in zip(checked, claimed, strict=True) if fresh]
    for origin, host, why in refused:
        refuse(client, "answer", origin, why, HEAD, f"answer in {host!r}'s name")
    record_answers(client, [answer for answer, _ in checked])
    for answer, _ in checked:
        if answer["jobs"]:
            recover_ends(answer["host"], answer["jobs"])
    return len(checked)


class Claim(TypedDict):
    """The nonce of a checked answer's signature, to claim under its node's name."""

    host: str
    nonce: str


def checked_answers(raw: list[bytes], keys: Keyring, window: float,
                    now: float) -> tuple[list[tuple[Answer, Claim]], list[tuple[str, str, str]]]:
    """The answers whose signature holds (nonces still to claim), and the refused ones (origin, host, why)."""
    checked: list[tuple[Answer, Claim]] = []
    refused: list[tuple[str, str, str]] = []
    subject = task_subject(Task.FINAUD_ANSWER, HEAD)
    for item in raw:
        try:
            kwargs = json.loads(item)
            signature = kwargs.pop(TASK_FIELD, None)
            answer = Answer(host=str(kwargs["host"]), token=str(kwargs["token"]), jobs=dict(kwargs.get("jobs") or {}))
        except (ValueError, TypeError, KeyError, AttributeError):
            refused.append(("unknown", "?", "malformed answer"))
            continue
        host = answer["host"]
        if not keys.enabled:
            checked.append((answer, Claim(host=host, nonce="")))
            continue
        try:
            key = keys.node(host)
            if key is None:
                raise Refused(f"no key for node {host!r}")
            signed = verify(key, signature, subject, kwargs, window=window, now=now)
            if signed["signer"] != host:
                raise Refused(f"signed by {signed['signer']}, not {host}")
        except Refused as why:
            refused.append((claimed_signer(signature, lambda s: keys.node(s) is not None), host, str(why)))
            continue
        checked.append((answer, Claim(host=host, nonce=signed["nonce"])))
    return checked, refused


def record_answers(client: Redis, answers: list[Answer]) -> None:
    """The tokens the nodes answered with, for the next judgement; answering clears a node's miss."""
    if not answers:
        return
    pipe = client.pipeline(transaction=False)
    tokens: dict[str | bytes, str] = {a["host"]: a["token"] for a in answers}
    pipe.hset(ANSWERED, mapping=tokens)
    pipe.hdel(MISSED, *{a["host"] for a in answers})
    pipe.execute()


def answer(host: str, token: str, jobs: dict[str, JobStatus | str] | None = None) -> None:
    """A node answered its ping as a task (where it could not push it onto the answers' list)."""
    record_answers(broker_redis(), [Answer(host=host, token=token, jobs=jobs or {})])
    recover_ends(host, jobs or {})


def recover_ends(host: str, jobs: dict[str, JobStatus | str]) -> None:
    """Recover the end reports a node's answer holds that the head never got.

    The recovered ends are queued as one batch of reports for the next cycle,
    as the node would have queued them (conditional updates: an end the head
    already has changes nothing).
    """
    ends: list[EndedReport] = []
    for job_id, status in jobs.items():
        if isinstance(status, dict):  # else "running" or "unknown"
            try:
                ends.append(ended_report(job_id, host, status))
            except ValueError as error:
                logger.error("finaud: %s's status of job %s dropped: %s", host, job_id, error)
    if not ends:
        return
    with session_scope() as session:
        started = set(session.scalars(
            select(Job.job_id).where(Job.job_id.in_([e["job_id"] for e in ends]), Job.state.in_(STARTED_STATES))
        ))
        if head_keyring().enabled:  # the node's word counts for its own jobs only
            foreign = trust.off_their_hosts(session, [(job_id, host) for job_id in started])
            trust.refuse_foreign(broker_redis(), "answer", foreign)
            started -= {job_id for job_id, _ in foreign}
    lost = [end for end in ends if end["job_id"] in started]
    for end in lost:
        logger.warning("job %s: end report recovered from %s", end["job_id"], host)
    if lost:
        queue_reports(cast(list[Report], trust.signed_by_head(cast(list[dict[str, Any]], lost))))
