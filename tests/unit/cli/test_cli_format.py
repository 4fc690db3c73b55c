"""oarstat's and oarnodes' output, from plain dicts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from oar_celery.client import format as fmt

T0 = time.mktime((2025, 3, 4, 5, 6, 7, 0, 0, -1))


def job(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 42,
        "name": "test",
        "owner": "alice",
        "state": "Running",
        "queue": "default",
        "submission_time": T0,
        "start_time": T0 + 60,
        "stop_time": 0.0,
        "command": "./run.sh",
        "walltime": 3723,
        "exit_code": None,
        "message": "",
        "types": ["besteffort"],
        "dependencies": [40],
        "assigned_resources": [1, 2],
        "assigned_network_address": ["node1"],
        "scheduled_start": None,
        "events": [{"type": "FRAG_JOB_REQUEST", "date": T0 + 120, "description": "user frag"}],
        "state_history": [{"state": "Waiting", "date_start": T0, "date_stop": T0 + 60}],
        "array_id": 42,
        "array_index": 1,
    }
    return {**base, **fields}


def test_duration_and_dates() -> None:
    assert fmt.duration(3723) == "1:02:03"
    assert fmt.duration(100 * 3600) == "100:00:00"
    assert fmt.date_text(T0) == "2025-03-04 05:06:07"
    assert fmt.date_text(0) == ""


@pytest.mark.parametrize(
    ("state", "letter"),
    [("Waiting", "W"), ("Hold", "H"), ("toLaunch", "L"), ("Launching", "L"), ("Running", "R"),
     ("Suspended", "S"), ("Error", "E"), ("Terminated", "T"), ("Finishing", "F"), ("toAckReservation", "W")],
)  # fmt: skip
def test_state_letters(state: str, letter: str) -> None:
    assert fmt.state_letter(state) == letter


def test_jobs_table() -> None:
    lines = fmt.jobs_table([job(), job(id=43, name=None, state="Waiting")]).splitlines()
    assert lines[0] == "Job id     Name           User           Submission Date     S Queue"
    assert lines[1] == "---------- -------------- -------------- ------------------- - ----------"
    assert lines[2] == "42         test           alice          2025-03-04 05:06:07 R default"
    assert lines[3] == "43                        alice          2025-03-04 05:06:07 W default"


def test_empty_table_has_its_header() -> None:
    assert len(fmt.jobs_table([]).splitlines()) == 2


def test_job_states() -> None:
    assert fmt.job_states([job(), job(id=7, state="Hold")]) == "42: Running\n7: Hold"


def test_job_full() -> None:
    text = fmt.job_full(job())
    lines = text.splitlines()
    assert lines[0] == "Job_Id: 42"
    for expected in [
        "    name = test",
        "    owner = alice",
        "    state = Running",
        "    assigned_resources = 1+2",
        "    assigned_hostnames = node1",
        "    queue = default",
        "    command = ./run.sh",
        "    walltime = 1:02:03",
        "    submissionTime = 2025-03-04 05:06:07",
        "    startTime = 2025-03-04 05:07:07",
        "    scheduledStart = no prediction",
        "    types = besteffort",
        "    dependencies = 40",
        "    array_id = 42",
        "    events = ",
        "        2025-03-04 05:08:07> FRAG_JOB_REQUEST: user frag",
        "    state history = ",
        "        Waiting: 2025-03-04 05:06:07 -> 2025-03-04 05:07:07",
    ]:
        assert expected in lines, expected
    assert "    scheduledStart = 2025-03-04 05:06:07" in fmt.job_full(job(scheduled_start=T0)).splitlines()


def test_jobs_json() -> None:
    data = json.loads(fmt.jobs_json([job()]))
    entry = data["42"]
    for key in ["id", "name", "owner", "state", "queue", "command", "submission_time", "start_time", "stop_time",
                "exit_code", "walltime", "assigned_network_address", "assigned_resources", "message",
                "scheduled_start", "types", "events", "array_id", "array_index", "dependencies"]:  # fmt: skip
        assert key in entry, key
    assert entry["submission_time"] == int(T0)
    assert entry["events"][0]["date"] == int(T0 + 120)


RESOURCES = [
    {"resource_id": 1, "network_address": "node1", "state": "Alive", "cpu": 1, "core": 1, "host": "node1",
     "mem": 64, "available_upto": 2147483647.0, "drain": "NO"},
    {"resource_id": 2, "network_address": "node1", "state": "Alive", "cpu": 1, "core": 2, "host": "node1",
     "mem": 64, "available_upto": 2147483647.0, "drain": "YES"},
    {"resource_id": 3, "network_address": "node2", "state": "Dead", "cpu": 1, "core": 1, "host": "node2",
     "mem": None, "available_upto": 0.0, "drain": "NO"},
]  # fmt: skip


def test_resources_table() -> None:
    lines = fmt.resources_table(RESOURCES, {1: [42]}).splitlines()
    assert lines[0].split() == ["network_address", "resource_id", "state", "cpu", "core", "host", "mem",
                                "available_upto", "jobs"]  # fmt: skip
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["node1", "1", "Alive", "1", "1", "node1", "64", "2147483647", "42"]
    assert lines[4].split() == ["node2", "3", "Dead", "1", "1", "node2", "0"]


def test_resources_json_and_states() -> None:
    data = json.loads(fmt.resources_json(RESOURCES, {1: [42]}))
    assert data["1"]["network_address"] == "node1" and data["1"]["jobs"] == [42] and data["3"]["jobs"] == []
    assert fmt.resources_states(RESOURCES).splitlines() == [
        "node1",
        "    1 : Alive",
        "    2 : Alive (drain)",
        "node2",
        "    3 : Dead",
    ]
    assert fmt.hosts_list(RESOURCES) == "node1\nnode2"


def test_resources_summary() -> None:
    lines = fmt.resources_summary(RESOURCES).splitlines()
    assert lines[1].split() == ["Alive", "2", "1"]
    assert lines[4].split() == ["Dead", "1", "1"]
    assert lines[-1].split() == ["total", "3", "2"]


def test_host_events() -> None:
    text = fmt.host_events([{"hostname": "node1", "job_id": 4, "type": "FINAUD_ERROR", "date": T0, "description": "x"}])
    assert text == "2025-03-04 05:06:07| node1| 4| FINAUD_ERROR: x"
