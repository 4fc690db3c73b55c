"""OAR 2.5's text and JSON output, from plain dicts.

Pure functions: the commands feed them what :mod:`.queries` returns, the
tests feed them literal dicts. Dates are local time ``YYYY-MM-DD HH:MM:SS``
as OAR prints them; durations are ``H:MM:SS`` with hours past 24.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: OAR's one-letter job states (oarstat's ``S`` column).
STATE_LETTERS = {
    "Waiting": "W",
    "toAckReservation": "W",
    "Hold": "H",
    "toLaunch": "L",
    "Launching": "L",
    "Running": "R",
    "Suspended": "S",
    "Resuming": "S",
    "Finishing": "F",
    "Terminated": "T",
    "Error": "E",
    "toError": "E",
}
JOB_TABLE_FORMAT = "{:<10} {:<14} {:<14} {:<19} {:<1} {:<10}"
JOB_TABLE_HEADER = ("Job id", "Name", "User", "Submission Date", "S", "Queue")
JOB_TABLE_RULE = ("-" * 10, "-" * 14, "-" * 14, "-" * 19, "-", "-" * 10)
RESOURCE_STATES = ("Alive", "Absent", "Suspected", "Dead")
RESOURCE_TABLE_COLUMNS = (
    "network_address",
    "resource_id",
    "state",
    "cpu",
    "core",
    "host",
    "mem",
    "available_upto",
)
_TIME_KEYS = (
    "submission_time",
    "start_time",
    "stop_time",
    "scheduled_start",
    "date",
    "date_start",
    "date_stop",
)


def date_text(epoch: float | None) -> str:
    """An epoch as local ``YYYY-MM-DD HH:MM:SS``; empty when unset (0)."""
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    """Seconds as ``H:MM:SS``."""
    if seconds is None:
        return ""
    from oar_celery.scheduler.walltime import format_walltime

    return format_walltime(seconds)


def state_letter(state: str) -> str:
    return STATE_LETTERS.get(state, state[:1].upper() if state else "?")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- oarstat


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> str:
    """oarstat's default table, header and dashed rule included."""
    lines = [JOB_TABLE_FORMAT.format(*JOB_TABLE_HEADER).rstrip(), JOB_TABLE_FORMAT.format(*JOB_TABLE_RULE)]
    for job in jobs:
        lines.append(
            JOB_TABLE_FORMAT.format(
                job["id"],
                _text(job.get("name")),
                _text(job.get("owner")),
                date_text(job.get("submission_time")),
                state_letter(job.get("state", "")),
                _text(job.get("queue")),
            ).rstrip()
        )
    return "\n".join(lines)


def job_states(jobs: Iterable[Mapping[str, Any]]) -> str:
    """``oarstat -s``: ``<id>: <State>`` per job."""
    return "\n".join(f"{job['id']}: {job['state']}" for job in jobs)


def event_line(event: Mapping[str, Any]) -> str:
    return f"{date_text(event.get('date'))}> {event.get('type')}: {_text(event.get('description'))}"


def job_events(job_id: int, events: Sequence[Mapping[str, Any]]) -> str:
    """``oarstat -e -j ID``: the job's events, oldest first."""
    if not events:
        return f"Job_Id: {job_id}\n    no event"
    return "\n".join([f"Job_Id: {job_id}", *(f"    {event_line(event)}" for event in events)])


def _history_line(entry: Mapping[str, Any]) -> str:
    stop = date_text(entry.get("date_stop")) or "now"
    return f"{entry['state']}: {date_text(entry.get('date_start'))} -> {stop}"


def _numbers(values: Iterable[Any]) -> str:
    return " ".join(str(value) for value in values)


def job_full(job: Mapping[str, Any]) -> str:
    """``oarstat -f``: OAR's ``Job_Id:`` block."""
    start = job.get("scheduled_start")
    fields = [
        ("name", _text(job.get("name"))),
        ("project", _text(job.get("project"))),
        ("owner", _text(job.get("owner"))),
        ("state", _text(job.get("state"))),
        ("wanted_resources", _text(job.get("wanted_resources"))),
        ("types", ", ".join(job.get("types") or ())),
        ("dependencies", _numbers(job.get("dependencies") or ())),
        ("assigned_resources", "+".join(str(r) for r in job.get("assigned_resources") or ())),
        ("assigned_hostnames", "+".join(job.get("assigned_network_address") or ())),
        ("queue", _text(job.get("queue"))),
        ("command", _text(job.get("command"))),
        ("launchingDirectory", _text(job.get("launching_directory"))),
        ("stdout_file", _text(job.get("stdout_file"))),
        ("stderr_file", _text(job.get("stderr_file"))),
        ("jobType", _text(job.get("job_type"))),
        ("properties", _text(job.get("properties"))),
        ("reservation", _text(job.get("reservation"))),
        ("walltime", duration(job.get("walltime"))),
        ("submissionTime", date_text(job.get("submission_time"))),
        ("startTime", date_text(job.get("start_time"))),
        ("stopTime", date_text(job.get("stop_time"))),
        ("scheduledStart", date_text(start) if start else "no prediction"),
        ("exit_code", _text(job.get("exit_code"))),
        ("message", _text(job.get("message"))),
        ("scheduler_info", _text(job.get("scheduler_info"))),
        ("initial_request", _text(job.get("initial_request"))),
        ("array_id", _text(job.get("array_id"))),
        ("array_index", _text(job.get("array_index"))),
        ("resubmit_job_id", _text(job.get("resubmit_job_id"))),
        ("karma", "" if job.get("karma") is None else f"{job['karma']:.3f}"),
    ]
    lines = [f"Job_Id: {job['id']}", *(f"    {name} = {value}" for name, value in fields)]
    lines.append("    events = ")
    lines.extend(f"        {event_line(event)}" for event in job.get("events") or ())
    lines.append("    state history = ")
    lines.extend(f"        {_history_line(entry)}" for entry in job.get("state_history") or ())
    return "\n".join(lines)


def jobs_full(jobs: Iterable[Mapping[str, Any]]) -> str:
    return "\n\n".join(job_full(job) for job in jobs)


def plain(value: Any, key: str = "") -> Any:
    """JSON-friendly values: whole-second times as ints, nested rows converted too."""
    if isinstance(value, Mapping):
        return {k: plain(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and (key in _TIME_KEYS or value.is_integer()):
        return int(value)
    return value


def jobs_json(jobs: Iterable[Mapping[str, Any]]) -> str:
    """``oarstat -J``: one object keyed by job id text."""
    return json.dumps({str(job["id"]): plain(job) for job in jobs}, indent=4, sort_keys=True)


# --------------------------------------------------------------------------- oarnodes


def resources_table(resources: Sequence[Mapping[str, Any]], jobs: Mapping[int, list[int]] | None = None) -> str:
    """oarnodes' table: one line per resource, columns sized to their content."""
    jobs = jobs or {}
    header = [*RESOURCE_TABLE_COLUMNS, "jobs"]
    rows = [
        [
            *(_text(res.get(name)) for name in RESOURCE_TABLE_COLUMNS),
            _numbers(jobs.get(res["resource_id"], ())),
        ]
        for res in resources
    ]
    upto = RESOURCE_TABLE_COLUMNS.index("available_upto")
    for row in rows:
        row[upto] = _upto(row[upto])
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    line = " ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out.extend(line.format(*row).rstrip() for row in rows)
    return "\n".join(out)


def _upto(text: str) -> str:
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def resources_json(resources: Iterable[Mapping[str, Any]], jobs: Mapping[int, list[int]] | None = None) -> str:
    """``oarnodes -J``: every column of each resource keyed by resource id text."""
    jobs = jobs or {}
    data = {
        str(res["resource_id"]): {**plain(res), "jobs": list(jobs.get(res["resource_id"], ()))} for res in resources
    }
    return json.dumps(data, indent=4, sort_keys=True)


def _state_text(res: Mapping[str, Any]) -> str:
    state = _text(res.get("state"))
    if res.get("drain") == "YES":
        state += " (drain)"
    return state


def resources_states(resources: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -s``: each host, then ``    <resource_id> : <state>`` lines."""
    lines: list[str] = []
    current = None
    for res in resources:
        if res.get("network_address") != current:
            current = res.get("network_address")
            lines.append(_text(current))
        lines.append(f"    {res['resource_id']} : {_state_text(res)}")
    return "\n".join(lines)


def hosts_list(resources: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -l``: the hosts, once each, in order."""
    return "\n".join(dict.fromkeys(_text(res.get("network_address")) for res in resources))


def resources_summary(resources: Sequence[Mapping[str, Any]]) -> str:
    """``oarnodes -S``: how many resources and hosts are in each state."""
    by_state = Counter(_text(res.get("state")) for res in resources)
    hosts: dict[str, set[str]] = {}
    for res in resources:
        hosts.setdefault(_text(res.get("state")), set()).add(_text(res.get("network_address")))
    states = [*RESOURCE_STATES, *sorted(set(by_state) - set(RESOURCE_STATES))]
    lines = [f"{'state':<10} {'resources':>9} {'hosts':>6}"]
    lines.extend(f"{state:<10} {by_state.get(state, 0):>9} {len(hosts.get(state, ())):>6}" for state in states)
    all_hosts = {_text(res.get("network_address")) for res in resources}
    lines.append(f"{'total':<10} {len(resources):>9} {len(all_hosts):>6}")
    return "\n".join(lines)


def host_events(events: Iterable[Mapping[str, Any]]) -> str:
    """``oarnodes -e``: ``date| host| job| TYPE: description`` lines, oldest first."""
    return "\n".join(
        f"{date_text(e.get('date'))}| {e.get('hostname')}| {e.get('job_id')}| {e.get('type')}: "
        f"{_text(e.get('description'))}"
        for e in events
    )


def accounting_table(summary: Mapping[tuple[str, str], Mapping[str, int]]) -> str:
    """``oarstat --accounting``: one line per user, OAR3's columns."""
    headers = ["User", "First window starts", "Last window ends", "Asked (seconds)", "Used (seconds)"]
    lines = [
        [user, date_text(entry["begin"]), date_text(entry["end"]), str(entry["ASKED"]), str(entry["USED"])]
        for (user, _), entry in sorted(summary.items(), key=lambda item: item[1]["USED"])
    ]
    widths = [max(len(row[i]) for row in [headers, *lines]) for i in range(len(headers))]
    rows = [headers, ["-" * width for width in widths], *lines]
    return "\n".join(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def accounting_user(user: str, first: str, second: str, entry: Mapping[str, int] | None,
                    projects: Mapping[tuple[str, str], Mapping[str, int]],
                    karmas: Mapping[str, float] | None = None) -> str:
    """``oarstat -u USER --accounting``: OAR3's usage summary of one user, then by project."""
    def consumption(label: str, seconds: int) -> str:
        return f"{label:>28}: {seconds:>10} ({duration(seconds):>10})"

    asked, used = (entry or {}).get("ASKED", 0), (entry or {}).get("USED", 0)
    lines = [
        f"Usage summary for user {user} from {first} to {second}:",
        "-------------------------------------------------------------",
        f"{'Start of the first window':>28}: {date_text(entry['begin']) if entry else 'No window found'}",
        f"{'End of the last window':>28}: {date_text(entry['end']) if entry else 'No window found'}",
        consumption("Asked consumption", asked),
        consumption("Used consumption", used),
        "By project consumption:",
    ]
    for (_, project), values in sorted(projects.items()):
        lines += [f"  {project}:", consumption("Asked consumption", values["ASKED"]),
                  consumption("Used consumption", values["USED"])]
        if karmas and project in karmas:
            lines.append(f"{'Last Karma':>28}: {karmas[project]:.3f}")
    return "\n".join(lines)
