"""What the head believes of a node's reports: signed by their node, fresh, never seen, about its own jobs.

The checks of :mod:`oar_celery.protocol.signing`, for the report batches
queued in ``oar:reports``: each report of a batch is checked on its own, and
a refused one is logged, counted and dropped without its batch. The nonces
of a batch are claimed in one script before it is applied, and given back
if its transaction fails, so that the next cycle can apply it again.

The identity check needs the database: a node may only report on jobs that
hold resources on it (:func:`off_their_hosts`), so a node's key speaks for
its own jobs alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from oar_celery.config import settings
from oar_celery.db.models import AssignedResource, Job, Resource
from oar_celery.db.session import execute
from oar_celery.head.lib.hosts import add_head_side_hosts
from oar_celery.protocol import scripts
from oar_celery.protocol.names import seen_key
from oar_celery.protocol.signing import (
    HEAD,
    REPORT,
    REPORT_FIELD,
    Keyring,
    Refused,
    Signature,
    claim_note,
    claimed_signer,
    head_keyring,
    nonce_ttl,
    refuse,
    sign,
    valid_name,
    verify,
)


@dataclass
class Verified:
    """The reports a batch's checks let through, and the nonces claimed for them."""

    reports: list[Any] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)

    def release(self, client: redis.Redis) -> None:
        """Forget the nonces claimed: the batch was not applied and will be checked again."""
        if self.claimed:
            with contextlib.suppress(redis.RedisError):
                client.delete(*self.claimed)


def report_kind(raw: object) -> str:
    """A report's kind as a counter's label: ``running``, ``ended``, else ``report``."""
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return kind if kind in ("running", "ended") else "report"


def check_report(keys: Keyring, raw: object, window: float) -> Signature:
    """One report's signature: by its node (or by the head), about that node. Raises Refused."""
    if not isinstance(raw, dict):
        raise Refused("not a report")
    signature = raw.get(REPORT_FIELD)
    signer = signature.get("signer") if isinstance(signature, dict) else None
    if signature is None:
        raise Refused("unsigned")
    if not valid_name(signer):
        raise Refused("malformed signature")
    key = keys.head() if signer == HEAD else keys.node(str(signer))
    if key is None:
        raise Refused(f"no key for {signer}")
    checked = verify(key, signature, REPORT, raw, window=window)
    if signer != HEAD and raw.get("host") != signer:
        raise Refused(f"signed by {signer} about host {raw.get('host')!r}")
    return checked


def verified_reports(client: redis.Redis, raws: Iterable[object]) -> Verified:
    """The reports whose signature, freshness and nonce hold (all of them where the head has no keys)."""
    keys = head_keyring()
    if not keys.enabled:
        return Verified(list(raws))
    window = settings().signature_window
    candidates: list[tuple[Any, Signature]] = []
    for raw in raws:
        try:
            candidates.append((raw, check_report(keys, raw, window)))
        except Refused as why:
            signature = raw.get(REPORT_FIELD) if isinstance(raw, dict) else None
            origin = claimed_signer(signature, lambda signer: signer == HEAD or keys.node(signer) is not None)
            note = claim_note(signature) if origin == "unknown" else ""
            refuse(client, report_kind(raw), origin, str(why), HEAD, ", ".join(filter(None, (_about(raw), note))))
    if not candidates:
        return Verified()
    names = [seen_key(signature["signer"], signature["nonce"]) for _, signature in candidates]
    fresh = client.eval(scripts.CLAIM_NONCES, len(names), *names, nonce_ttl(window))
    verified = Verified()
    for (raw, signature), name, new in zip(candidates, names, fresh, strict=True):
        if new:
            verified.reports.append(raw)
            verified.claimed.append(name)
        else:
            refuse(client, report_kind(raw), signature["signer"], "replayed: this report was already received",
                   HEAD, _about(raw))
    return verified


def _about(raw: object) -> str:
    if not isinstance(raw, dict):
        return ""
    return f"job {str(raw.get('job_id'))[:20]} on {str(raw.get('host'))[:64]}"


def off_their_hosts(session: Session, claims: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """The (job, host) claims of reports about a job that holds no resource on that host.

    One query on the assigned resources; the cosystem and deploy host (the
    head side's, :func:`.hosts.add_head_side_hosts`) is looked up only for
    the claims that query did not confirm.
    """
    wanted = set(claims)
    if not wanted:
        return set()
    rows = execute(session, _ASSIGNED_HOSTS, {"job_ids": sorted({job_id for job_id, _ in wanted})})
    unconfirmed = wanted - {(job_id, host) for job_id, host in rows}
    if not unconfirmed:
        return set()
    hosts: dict[int, list[str]] = {job_id: [] for job_id, _ in unconfirmed}
    add_head_side_hosts(session, hosts)
    return {(job_id, host) for job_id, host in unconfirmed if host not in hosts[job_id]}


#: The hosts each job holds resources on.
_ASSIGNED_HOSTS = (
    select(Job.job_id, Resource.network_address).distinct()
    .join(AssignedResource, AssignedResource.moldable_job_id == Job.assigned_moldable_job)
    .join(Resource, Resource.resource_id == AssignedResource.resource_id)
    .where(Job.job_id.in_(bindparam("job_ids", expanding=True)))
)


def refuse_foreign(client: redis.Redis | None, kind: str, foreign: Iterable[tuple[int, str]]) -> None:
    """Log and count each report a node made about another node's job."""
    for job_id, host in sorted(foreign):
        refuse(client, kind, host, f"job {job_id} does not run on {host}", HEAD)


def signed_by_head(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reports the head queues itself (ends recovered from a checked ping answer), signed with its own key."""
    keys = head_keyring()
    key = keys.head() if keys.enabled else None
    if key is None:
        return list(reports)
    return [{**report, REPORT_FIELD: sign(key, HEAD, REPORT, report)} for report in reports]
