"""``oarnodesetting`` on the head: add resources, set properties, request state changes.

State changes are requests (``next_state``), applied by NodeChangeState in the
next Almighty cycle, as in OAR, so that every change goes through one place
that logs it and deals with the jobs on the node.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select, update

from oar_celery.config import settings
from oar_celery.db.models import GanttJobResource, Resource, ResourceLog
from oar_celery.db.session import session_scope
from oar_celery.head.lib.failures import active_jobs_on
from oar_celery.head.lib.jobs import request_frag
from oar_celery.head.lib.resources import add_resources, expand_nodeset, known_hosts, resources_table
from oar_celery.protocol.bus import notify
from oar_celery.protocol.states import ResourceState
from oar_celery.scheduler.errors import RequestError

logger = logging.getLogger(__name__)

SETTABLE_STATES = (ResourceState.ALIVE, ResourceState.ABSENT, ResourceState.DEAD)


def _selected(session: Any, hosts: list[str], resource_ids: list[int]) -> list[int]:
    ids: list[int] = []
    if hosts:
        rows = session.execute(
            select(Resource.resource_id, Resource.network_address).where(Resource.network_address.in_(hosts))
        ).all()
        found = {host for _, host in rows}
        missing = [host for host in hosts if host not in found]
        if missing:
            raise RequestError(f"unknown host '{missing[0]}'")
        ids += [resource_id for resource_id, _ in rows]
    if resource_ids:
        known = set(session.scalars(select(Resource.resource_id).where(Resource.resource_id.in_(resource_ids))))
        missing_ids = [r for r in resource_ids if r not in known]
        if missing_ids:
            raise RequestError(f"unknown resource id {missing_ids[0]}")
        ids += list(resource_ids)
    if not ids:
        raise RequestError("no resource selected: give -h HOST or -r ID")
    return sorted(set(ids))


def _coerce(table: Any, name: str, value: str) -> Any:
    if name not in table.c:
        raise RequestError(f"unknown property '{name}' (add it with oarproperty -a)")
    python_type = getattr(table.c[name].type, "python_type", str)
    if python_type in (int, float):
        try:
            return python_type(value)
        except ValueError:
            raise RequestError(f"property '{name}' takes a number, not '{value}'") from None
    return value


def _switch(flag: str | None, option: str) -> str | None:
    if flag is None:
        return None
    if flag not in ("on", "off"):
        raise RequestError(f"{option} takes on or off, not '{flag}'")
    return "YES" if flag == "on" else "NO"


def setting(
    user: str,
    *,
    add: bool = False,
    hosts: list[str] | None = None,
    resource_ids: list[int] | None = None,
    properties: dict[str, str] | None = None,
    state: str | None = None,
    no_wait: bool = False,
    maintenance: str | None = None,
    drain: str | None = None,
) -> list[str]:
    """Apply one ``oarnodesetting`` request; the lines to print. Raises RequestError."""
    if not settings().is_admin(user):
        raise RequestError(f"only root or {settings().admin_user} may change resources, not {user}")
    if state is not None and state not in SETTABLE_STATES:
        raise RequestError(f"bad state '{state}' (one of {', '.join(SETTABLE_STATES)})")
    drain_flag = _switch(drain, "-d")
    maintenance_flag = _switch(maintenance, "-m")
    lines: list[str] = []
    with session_scope() as session:
        table = resources_table(session)
        values = {name: _coerce(table, name, value) for name, value in (properties or {}).items()}
        if add:
            if not hosts or len(hosts) != 1:
                raise RequestError("-a needs exactly one -h HOST")
            ids = add_resources(session, hosts, properties=values)
            lines += [f"new resource {rid} on {hosts[0]}" for rid in ids]
            values = {}
        else:
            ids = _selected(session, hosts or [], resource_ids or [])
        if values:
            session.execute(table.update().where(table.c.resource_id.in_(ids)).values(**values))
            lines.append(f"properties of {len(ids)} resource(s) updated")
        if drain_flag:
            session.execute(update(Resource).where(Resource.resource_id.in_(ids)).values(drain=drain_flag))
            lines.append(f"drain {drain} on {len(ids)} resource(s)")
        target = state or ({"YES": ResourceState.ABSENT, "NO": ResourceState.ALIVE}.get(maintenance_flag or ""))
        if target:
            lines += request_state(session, ids, target, no_wait=no_wait)
    messages = (["ChState"] if target or add else []) + (["Qdel"] if target and no_wait else [])
    notify(messages + (["Scheduling"] if drain_flag else []))
    return lines


def request_state(session: Any, ids: list[int], target: str, *, no_wait: bool) -> list[str]:
    """Record the request for NodeChangeState; with ``no_wait``, frag the jobs on the resources now.

    Without ``no_wait`` an ``Absent`` or ``Dead`` request waits for the jobs to
    end: NodeChangeState applies it once no job holds the resource, and the
    scheduler gives a resource with a pending request no new job.
    """
    session.execute(update(Resource).where(Resource.resource_id.in_(ids)).values(next_state=target))
    lines = [f"{len(ids)} resource(s) will be set {target}"]
    jobs = active_jobs_on(session, ids)
    if jobs and target in (ResourceState.ABSENT, ResourceState.DEAD):
        if no_wait:
            for job_id in jobs:
                request_frag(session, job_id, "oar")
            lines.append(f"jobs fragged: {' '.join(map(str, jobs))}")
        else:
            lines.append(f"waiting for jobs {' '.join(map(str, jobs))} to end (-n does not wait)")
    return lines


def node_setting(user: str, **options: Any) -> dict[str, Any]:
    try:
        return {"results": setting(user, **options)}
    except RequestError as error:
        return {"error": str(error)}


def remove_resources(user: str, resource_ids: list[int]) -> list[str]:
    """``oarremoveresource``: delete ``Dead`` resources and their logs; all or nothing."""
    if not settings().is_admin(user):
        raise RequestError(f"only root or {settings().admin_user} may remove resources, not {user}")
    if not resource_ids:
        raise RequestError("no resource id given")
    with session_scope() as session:
        states = dict(
            session.execute(
                select(Resource.resource_id, Resource.state).where(Resource.resource_id.in_(resource_ids))
            ).all()
        )
        for resource_id in resource_ids:
            if resource_id not in states:
                raise RequestError(f"unknown resource id {resource_id}")
            if states[resource_id] != ResourceState.DEAD:
                raise RequestError(f"resource {resource_id} is {states[resource_id]}, not Dead: set it Dead first")
        ids = sorted(set(resource_ids))
        session.execute(delete(ResourceLog).where(ResourceLog.resource_id.in_(ids)))
        session.execute(delete(GanttJobResource).where(GanttJobResource.resource_id.in_(ids)))
        removed = session.execute(
            delete(Resource)
            .where(Resource.resource_id.in_(ids), Resource.state == ResourceState.DEAD)
            .returning(Resource.resource_id)
        ).all()
        if len(removed) != len(ids):  # one came back to life meanwhile: change nothing
            raise RequestError("a resource changed state meanwhile: nothing removed")
    logger.info("resources removed: %s", ids)
    return [f"resource {resource_id} removed" for resource_id in ids]


def remove_resources_task(user: str, resource_ids: list[int]) -> dict[str, Any]:
    try:
        return {"results": remove_resources(user, [int(r) for r in resource_ids])}
    except RequestError as error:
        return {"error": str(error)}


def add_hosts(user: str, nodeset: str, *, cpus: int = 1, cores: int = 1, properties: dict[str, str] | None = None,
              node_cpus: int | None = None) -> list[str]:
    """``oar-celery resources add``: one resource per core of every new host of ``nodeset``.

    Idempotent: hosts that have resources already are left as they are, so
    running the same request twice adds nothing.
    """
    if not settings().is_admin(user):
        raise RequestError(f"only root or {settings().admin_user} may add resources, not {user}")
    wanted = expand_nodeset(str(nodeset))
    with session_scope() as session:
        present = known_hosts(session, wanted)
        hosts = [host for host in wanted if host not in present]
        ids = add_resources(session, hosts, cpus=int(cpus), cores=int(cores), properties=dict(properties or {}),
                            node_cpus=None if node_cpus is None else int(node_cpus)) if hosts else []
    lines = [f"{len(present)} host(s) already have resources, left as they are: {','.join(present)}"] if present else []
    if ids:
        logger.info("resources %s..%s added on %s by %s", ids[0], ids[-1], ",".join(hosts), user)
        lines.append(f"{len(ids)} resource(s) added on {len(hosts)} host(s): {ids[0]}..{ids[-1]}")
        notify(["ChState"])
    return lines


def add_hosts_task(user: str, nodeset: str, cpus: int = 1, cores: int = 1, properties: dict[str, str] | None = None,
                   node_cpus: int | None = None) -> dict[str, Any]:
    try:
        return {"results": add_hosts(user, nodeset, cpus=cpus, cores=cores, properties=properties,
                                     node_cpus=node_cpus)}
    except RequestError as error:
        return {"error": str(error)}
    except (TypeError, ValueError) as error:
        return {"error": f"bad request: {error}"}
