"""A job's key, as the head gives it to the job's owner (``oarsub -I``, ``oarsub -C``, ``oarsub -e``).

The key is an HMAC of the job and its user under the secret head and nodes
share (:mod:`oar_celery.protocol.tls`): the head needs no table of keys, and a
node checks a key without asking anyone. A running job's answer also has its
ticket, sealed the same way, which lets its other nodes believe who the job's
user is and which of their CPUs are the job's.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import FINAL_STATES, Job
from oar_celery.head.lib.errors import Refused
from oar_celery.head.lib.launch import build_specs
from oar_celery.protocol import tls
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.jobshell import JobKey
from oar_celery.protocol.names import Key
from oar_celery.protocol.states import JobState


def job_key_answer(session: Session, job: Job, config: Settings) -> dict[str, Any]:
    """``{"state", "job_key"}``: the key alone while the job waits, with its ticket and nodes once it runs."""
    if job.state in FINAL_STATES:
        raise Refused(f"job {job.job_id} has ended ({job.state})")
    try:
        key = tls.read_shared_key(config.keys)
    except OSError:
        raise Refused("this cluster has no job-shell keys (see 'oar-celery keys')") from None
    answer: JobKey = {"job_id": job.job_id, "key": tls.job_secret(key, job.job_id, job.job_user),
                      "ca": tls.ca_pem(config.keys)}
    if job.state == JobState.RUNNING:
        specs = build_specs(session, [job.job_id])
        if specs:
            spec: dict[str, Any] = dict(specs[0])
            hosts = list(spec["hosts"])
            ticket = _ticket(spec, job.start_time)
            answer["first_host"], answer["nodes"] = hosts[0], _nodes()
            answer["ticket"], answer["ticket_mac"] = ticket, tls.ticket_mac(key, ticket)
    return {"state": str(job.state), "job_key": dict(answer)}


def _ticket(spec: dict[str, Any], start_time: float) -> dict[str, Any]:
    """The same fields as the first node's ticket (``node/jobshell.job_ticket``)."""
    return {
        "job_id": int(spec["job_id"]), "user": str(spec["user"]), "hosts": list(spec.get("hosts") or []),
        "cpusets": dict(spec.get("cpusets") or {}), "mem": dict(spec.get("mem") or {}),
        "directory": str(spec.get("directory") or ""), "walltime": int(spec.get("walltime") or 0),
        "until": float(start_time) + float(spec.get("walltime") or 0), "nodefile": str(spec.get("nodefile") or ""),
        "name": str(spec.get("name") or ""), "project": spec.get("project"),
    }


def _nodes() -> dict[str, list[Any]]:
    """Every node's job-shell service (a node outside the job refuses the key, and says so in its log)."""
    nodes: dict[str, list[Any]] = {}
    for host, raw in broker_redis().hgetall(Key.JOBSHELL_SERVICES).items():
        found = json.loads(raw)
        nodes[host.decode() if isinstance(host, bytes) else str(host)] = [found["address"], int(found["port"])]
    return nodes
