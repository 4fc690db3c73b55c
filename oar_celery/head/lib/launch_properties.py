"""The resource properties file of a job (``OAR_RESOURCE_PROPERTIES_FILE``), as OAR writes it.

OAR's job resource manager writes one line per assigned resource, each
property as `` name = 'value' ,`` with the last comma cut: scripts parse
it, so the head builds the text in that exact form and the node only
writes it down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, column, literal_column, select, table
from sqlalchemy.orm import Session


def property_line(resource: Mapping[str, Any]) -> str:
    """One resource as OAR's line: `` resource_id = '1' , network_address = 'node1' ``."""
    line = "".join(f" {name} = '{'' if value is None else value}' ," for name, value in resource.items())
    return line[:-1]


def properties_of(resources: Iterable[Mapping[str, Any]]) -> str:
    """The file's text for these resources (each a full ``resources`` row), newline-terminated."""
    return "".join(f"{property_line(resource)}\n" for resource in resources)


def properties_text(session: Session, job_ids: list[int]) -> dict[int, str]:
    """Per job, its resources' lines (by resource id), newline-terminated: two queries for all the jobs."""
    if not job_ids:
        return {}
    assigned = table("assigned_resources", column("resource_id"), column("moldable_job_id"))
    jobs = table("jobs", column("job_id"), column("assigned_moldable_job"))
    pairs = session.execute(
        select(jobs.c.job_id, assigned.c.resource_id)
        .join(assigned, assigned.c.moldable_job_id == jobs.c.assigned_moldable_job)
        .where(jobs.c.job_id.in_(bindparam("job_ids", expanding=True)))
        .order_by(jobs.c.job_id, assigned.c.resource_id),
        {"job_ids": job_ids},
    ).all()
    resources = table("resources", column("resource_id"))
    query: Any = (
        select(literal_column("*")).select_from(resources)
        .where(resources.c.resource_id.in_(bindparam("ids", expanding=True)))
    )
    found = session.execute(query, {"ids": sorted({r for _, r in pairs})}).mappings()
    rows = {row["resource_id"]: row for row in found}
    lines: dict[int, list[str]] = defaultdict(list)
    for job_id, resource_id in pairs:
        if resource_id in rows:
            lines[job_id].append(property_line(dict(rows[resource_id])))
    return {job_id: "".join(f"{line}\n" for line in text) for job_id, text in lines.items()}
