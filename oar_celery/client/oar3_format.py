"""oarstat's and oarnodes' output in OAR3's formats, from plain dicts.

OAR3 prints its tables with Rich (``box.SIMPLE_HEAD``): a blank edge line,
the header, a rule of ``─``, the rows, a blank edge line; each cell padded by
one space on each side, columns as wide as their widest cell. This module
writes the same layout without Rich (not a dependency here), trailing
spaces left out and no wrapping to the terminal's width, so that a script
reading OAR3's output reads this one.

``-J``/``-Y`` use OAR3's keys: its ``Job`` and ``Resource`` model attribute
names (``id``, ``name``, ``user``, ``queue_name``, ``types``...). Pure
functions: the commands feed them what :mod:`.queries` returns.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oar_celery.wait_status import status_text

#: OAR3's ``OARSTAT_DEFAULT_FIELD``: the default table's columns, in order.
JOB_TABLE_HEADERS = ("Job id", "Job name", "Duration", "State", "User", "System message", "Queue")
STARTED = ("Running", "Launching", "Finishing")
#: OAR3's ``check_resource_system_property``: columns users do not see as properties.
SYSTEM_PROPERTIES = frozenset({
    "resource_id", "state", "state_num", "next_state", "finaud_decision", "next_finaud_decision",
    "last_job_date", "suspended_jobs", "expiry_date", "scheduler_priority",
})
#: OAR3's ``Job`` attributes in model order, and the key of this project's job dict each comes from.
JOB_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("id", "id"), ("array_id", "array_id"), ("array_index", "array_index"),
    ("initial_request", "initial_request"), ("name", "name"), ("env", "env"), ("type", "job_type"),
    ("info_type", "info_type"), ("state", "state"), ("reservation", "reservation"), ("message", "message"),
    ("scheduler_info", "scheduler_info"), ("user", "owner"), ("project", "project"), ("group", "group"),
    ("command", "command"), ("exit_code", "exit_code"), ("queue_name", "queue"), ("properties", "properties"),
    ("launching_directory", "launching_directory"), ("submission_time", "submission_time"),
    ("start_time", "start_time"), ("stop_time", "stop_time"), ("file_id", "file_id"),
    ("accounted", "accounted"), ("notify", "notify"), ("assigned_moldable_job", "assigned_moldable_job"),
    ("checkpoint", "checkpoint"), ("checkpoint_signal", "signal"), ("stdout_file", "stdout_file"),
    ("stderr_file", "stderr_file"), ("resubmit_job_id", "resubmit_job_id"), ("suspended", "suspended"),
    ("last_karma", "last_karma"),
)
_DATES = ("submission_time", "start_time", "stop_time")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def date_text(epoch: float | None) -> str:
    """OAR3's ``local_to_sql``: local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(epoch or 0)))


# --------------------------------------------------------------------------- tables


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rich's ``SIMPLE_HEAD`` table as text: edge line, header, ``─`` rule, rows, edge line."""
    body = [[_text(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in body)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (" " + " ".join(f" {cell:<{w}} " for cell, w in zip(cells, widths, strict=True))).rstrip()

    rule = " " + "─".join("─" * (w + 2) for w in widths)
    return "\n".join(["", line(headers), rule, *(line(row) for row in body), ""])


# --------------------------------------------------------------------------- oarstat


def duration(job: Mapping[str, Any], now: float) -> str:
    """OAR3's ``Duration`` column: running time so far, or start to stop; ``-`` before the start."""
    start = int(job.get("start_time") or 0)
    stop = int(job.get("stop_time") or 0)
    if not start or now <= start:
        return "-"
    if job.get("state") in STARTED:
        seconds = int(now) - start
    elif stop:
        seconds = stop - start
    else:
        return "-"
    return str(datetime.timedelta(seconds=max(0, seconds)))


def nodeset(hosts: Iterable[str]) -> str:
    """Hosts folded as OAR3 shows them (ClusterShell's ``node[1-3]``)."""
    names = [host for host in hosts if host]
    if not names:
        return ""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(names))


def jobs_table(jobs: Iterable[Mapping[str, Any]], now: float, *, resources: bool = False) -> str:
    """oarstat's default table (``-r`` adds ``Network addresses``)."""
    headers = [*JOB_TABLE_HEADERS, *(["Network addresses"] if resources else [])]
    rows = []
    for job in jobs:
        row = [str(job["id"]), _text(job.get("name")), duration(job, now), _text(job.get("state")),
               _text(job.get("owner")), _text(job.get("message")), _text(job.get("queue"))]
        if resources:
            row.append(nodeset(job.get("assigned_network_address") or ()))
        rows.append(row)
    return table(headers, rows)


def compact(jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``-c``: an array job as one line, its first job's, named after the array, with its job count."""
    by_array: dict[Any, list[Mapping[str, Any]]] = {}
    for job in jobs:
        by_array.setdefault(job.get("array_id") or job["id"], []).append(job)
    lines = []
    for array_id, members in by_array.items():
        first = dict(members[0])
        if len(members) > 1:
            first["id"] = f"{array_id}[{len(members)}]"
        lines.append(first)
    return lines


def record(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job under OAR3's keys (``Job.to_dict()`` plus what ``-f`` adds), times as epoch ints."""
    result: dict[str, Any] = {}
    for key, source in JOB_ATTRIBUTES:
        value = job.get(source)
        if key in _DATES or (isinstance(value, float) and value.is_integer()):
            value = int(value or 0)
        result[key] = value
    result["cpuset_name"] = f"{job.get('owner')}_{job['id']}"
    if "types" in job:
        result["types"] = list(job.get("types") or [])
        result["walltime"] = job.get("walltime")
        result["network_adresses"] = nodeset(job.get("assigned_network_address") or ())
        result["resources"] = list(job.get("assigned_resources") or [])
        result["dependencies"] = list(job.get("dependencies") or [])
        result["events"] = [event_record(e) for e in job.get("events") or ()]
        result["scheduled_start"] = job.get("scheduled_start")  # OAR3 shows no prediction; kept from OAR 2.5
    return result


def event_record(event: Mapping[str, Any]) -> dict[str, Any]:
    return {"date": date_text(event.get("date")), "type": _text(event.get("type")),
            "description": _text(event.get("description"))}


def dump(data: Any, *, yaml: bool) -> str:
    """``-J`` (JSON, as OAR3's ``json.dumps``) or ``-Y`` (YAML, as its ``yaml.dump``)."""
    if yaml:
        import yaml as pyyaml

        return pyyaml.safe_dump(data, default_flow_style=False, sort_keys=True).rstrip("\n")
    return json.dumps(data, indent=4)


def jobs_data(jobs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``-J``/``-Y``: OAR3's object keyed by job id."""
    return {str(job["id"]): record(job) for job in jobs}


def full_values(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``-f``'s ``name = value`` pairs in OAR3's order, every field this project knows filled."""
    values = record(job)
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        if key in ("id", "events", "resources", "dependencies"):
            continue
        if key in _DATES:
            text = date_text(value) if value else ""
        elif key == "exit_code":
            text = status_text(value)
        elif key == "types":
            text = ", ".join(value)
        elif key == "walltime":
            text = _walltime(value)
        else:
            text = _text(value)
        if text:
            pairs.append((key, text))
    if job.get("exit_code") is not None:
        pairs.append(("exit_status_code", str(_status_code(job["exit_code"]))))
    for key, text in (
        ("wanted_resources", _text(job.get("wanted_resources"))),
        ("assigned_resources", "+".join(str(r) for r in job.get("assigned_resources") or ())),
        ("dependencies", " ".join(str(d) for d in job.get("dependencies") or ())),
        ("scheduled_start", date_text(job["scheduled_start"]) if job.get("scheduled_start") else ""),
    ):
        if text:
            pairs.append((key, text))
    return pairs


def _walltime(seconds: Any) -> str:
    if seconds is None:
        return ""
    from oar_celery.scheduler.walltime import format_walltime

    return format_walltime(int(seconds))


def _status_code(status: int) -> int:
    """OAR3's ``convert_status_code``: the exit value, else the signal."""
    return (status >> 8) if status >> 8 else status & 127


def job_full(job: Mapping[str, Any]) -> str:
    """``oarstat -f``: OAR3's ``id: N`` block, then the job's events."""
    lines = [f"id: {job['id']}", *(f"    {key} = {text}" for key, text in full_values(job))]
    events = job.get("events") or ()
    if events:
        lines.append("    events =")
        lines.extend(f"        {date_text(e.get('date'))}> {e.get('type')}: {_text(e.get('description'))}"
                     for e in events)
    history = job.get("state_history") or ()
    if history:  # not in OAR3's -f: this project's, kept because it says when each state began and ended
        lines.append("    state history =")
        lines.extend(f"        {h['state']}: {date_text(h.get('date_start'))} -> "
                     f"{date_text(h['date_stop']) if h.get('date_stop') else 'now'}" for h in history)
    return "\n".join(lines) + "\n"


def jobs_full(jobs: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(job_full(job) for job in jobs)


def job_states(jobs: Iterable[Mapping[str, Any]]) -> str:
    """``oarstat -s``: ``<id>: <State>`` per job."""
    return "\n".join(f"{job['id']}: {job['state']}" for job in jobs)


def events_table(events: Iterable[Mapping[str, Any]]) -> str:
    """``oarstat -e``: OAR3's table of Date, job id, Type, Description."""
    rows = [[date_text(e.get("date")), str(e.get("job_id")), _text(e.get("type")), _text(e.get("description"))]
            for e in events]
    return table(("Date", "job id", "Type", "Description"), rows)


def events_data(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(str(event.get("job_id")), []).append(event_record(event))
    return grouped


def user_properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in SYSTEM_PROPERTIES}


def properties_line(resource: Mapping[str, Any]) -> str:
    """``oarstat -p``: a resource of the job as ``name = 'value', ...``."""
    return ", ".join(f"{key} = '{_text(value)}'" for key, value in user_properties(resource).items())


# --------------------------------------------------------------------------- oarnodes


def resources_table(resources: Sequence[Mapping[str, Any]], properties: Sequence[str] = (),
                    *, show_all: bool = False) -> str:
    """oarnodes' default table: Id, Network address, State, Available upto, then the chosen properties."""
    columns = list(resources[0]) if resources else []
    shown = [name for name in columns if name not in SYSTEM_PROPERTIES and (show_all or name in properties)]
    headers = ["Id", "Network address", "State", "Available upto", *shown]
    rows = [[str(r["resource_id"]), _text(r.get("network_address")), _text(r.get("state")),
             str(int(r.get("available_upto") or 0)), *(_text(r.get(name)) for name in shown)] for r in resources]
    return "\n" + table(headers, rows)


def resources_data(resources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``oarnodes -J``: OAR3's list of resources (``Resource.to_dict()``), ``resource_id`` as ``id``."""
    out = []
    for resource in resources:
        row = {("id" if key == "resource_id" else key): _plain(value) for key, value in resource.items()}
        out.append(row)
    return out


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def resource_states(resources: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -s -r ID``: ``<id>: <state>`` lines."""
    return "\n".join(f"{r['resource_id']}: {r['state']}" for r in resources)


def by_host(resources: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Resources grouped by host, hosts in natural order (ClusterShell's, as OAR3)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        grouped.setdefault(_text(resource.get("network_address")), []).append(resource)
    from ClusterShell.NodeSet import NodeSet

    order = list(NodeSet.fromlist(list(grouped))) if grouped else []
    return {host: grouped[host] for host in order if host in grouped}


def host_states(resources: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -s``: OAR3's panel per host, a ``<resource id>    <state>`` line per resource."""
    blocks = []
    for host, members in by_host(resources).items():
        width = max(len(str(r["resource_id"])) for r in members)
        lines = [f"{r['resource_id']:<{width}}    {_state_text(r)}" for r in members]
        blocks.append("\n".join([host, *(f"    {line}" for line in lines)]))
    return "\n".join(blocks)


def _state_text(resource: Mapping[str, Any]) -> str:
    """The state, and `` (drain)`` for a drained resource (OAR3 shows it only by colour)."""
    drained = " (drain)" if resource.get("drain") == "YES" else ""
    return f"{_text(resource.get('state'))}{drained}"


def host_states_data(resources: Iterable[Mapping[str, Any]]) -> list[dict[str, list[dict[str, str]]]]:
    """``oarnodes -s -J``: OAR3's ``[{host: [{id: state}, ...]}, ...]``."""
    return [{host: [{str(r["resource_id"]): r["state"]} for r in members]}
            for host, members in by_host(resources).items()]


def summary(resources: Iterable[Mapping[str, Any]], jobs: Mapping[int, list[int]], now: float) -> str:
    """``oarnodes -S``: OAR3's node, status, running jobs, free resources (``free / total``) per host."""
    rows = []
    for host, members in by_host(resources).items():
        state = _text(members[0].get("state"))
        if state == "Absent" and int(members[0].get("available_upto") or 0) >= now:
            state = "Standby"
        running = sorted({job for r in members for job in jobs.get(r["resource_id"], ())})
        busy = sum(1 for r in members if jobs.get(r["resource_id"]))
        down = sum(1 for r in members if not jobs.get(r["resource_id"]) and r.get("state") != "Alive")
        free = len(members) - busy - down
        rows.append([host, state, ", ".join(map(str, running)), f"{free:3d} /{len(members):3d}"])
    return table(("node", "status", "running jobs", "free resources"), rows)


def host_events_table(events: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -e``: OAR3's table of Date, hostname, Job id, Type, Description."""
    rows = [[date_text(e.get("date")), _text(e.get("hostname")), str(e.get("job_id")), _text(e.get("type")),
             _text(e.get("description"))] for e in events]
    return table(("Date", "hostname", "Job id", "Type", "Description"), rows)


def host_events_data(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(_text(event.get("hostname")), []).append(
            {"date": int(event.get("date") or 0), "job_id": event.get("job_id"), "type": event.get("type"),
             "description": event.get("description")})
    return grouped
