"""The resource properties file of a job (``OAR_RESOURCE_PROPERTIES_FILE``), as OAR writes it.

OAR's job resource manager writes one line per assigned resource, each
property as `` name = 'value' ,`` with the last comma cut: scripts parse
it, so the head builds the text in that exact form and the node only
writes it down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, column, literal_column, select, table
from sqlalchemy.orm import Session


def property_line(resource: Mapping[str, Any]) -> str:
    """One resource as OAR's line: `` resource_id = '1' , network_address = 'node1' ``."""
    line = "".join(f" {name} = '{'' if value is None else value}' ," for name, value in resource.items())
    return line[:-1]


def properties_text(session: Session, job_ids: list[int]) -> dict[int, str]:
    """Per job, its resources' lines (by resource id), newline-terminated."""
    if not job_ids:
        return {}
    resources = table("resources", column("resource_id"))
    assigned = table("assigned_resources", column("resource_id"), column("moldable_job_id"))
    jobs = table("jobs", column("job_id"), column("assigned_moldable_job"))
    query = (
        select(jobs.c.job_id.label("oar_launch_job_id"), literal_column("resources.*"))
        .select_from(jobs)
        .join(assigned, assigned.c.moldable_job_id == jobs.c.assigned_moldable_job)
        .join(resources, resources.c.resource_id == assigned.c.resource_id)
        .where(jobs.c.job_id.in_(bindparam("job_ids", expanding=True)))
        .order_by(jobs.c.job_id, resources.c.resource_id)
    )
    lines: dict[int, list[str]] = defaultdict(list)
    for row in session.execute(query, {"job_ids": job_ids}).mappings():
        values = dict(row)
        job_id = values.pop("oar_launch_job_id")
        lines[job_id].append(property_line(values))
    return {job_id: "".join(f"{line}\n" for line in text) for job_id, text in lines.items()}
