"""oarstat's and oarnodes' output in OAR3's formats, from plain dicts (golden outputs).

The expected texts are what OAR3's ``oar/cli/oarstat.py`` and ``oarnodes.py``
print: Rich tables in ``box.SIMPLE_HEAD`` (edge line, header, ``─`` rule,
rows, edge line), ``-f`` as ``id: N`` then ``    key = value``, ``-J`` with
the ``Job`` model's attribute names.
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from oar_celery.client import oar3_format as fmt

T0 = time.mktime((2025, 3, 4, 5, 6, 7, 0, 0, -1))


def job(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 42, "name": "test", "owner": "alice", "state": "Running", "queue": "default",
        "submission_time": T0, "start_time": T0 + 60, "stop_time": 0.0, "command": "./run.sh",
        "walltime": 3723, "exit_code": None, "message": "R=2,W=1:2:3,J=B", "types": ["besteffort"],
        "dependencies": [40], "assigned_resources": [1, 2], "assigned_network_address": ["node1", "node2"],
        "scheduled_start": None, "array_id": 42, "array_index": 1, "project": "default", "job_type": "PASSIVE",
        "reservation": "None", "launching_directory": "/home/alice", "stdout_file": "/home/alice/OAR.test.42.stdout",
        "stderr_file": "/home/alice/OAR.test.42.stderr", "initial_request": "oarsub -n test ./run.sh",
        "events": [{"type": "FRAG_JOB_REQUEST", "date": T0 + 120, "description": "user frag"}],
    }  # fmt: skip
    return {**base, **fields}


def test_oar3_default_table_columns_and_rich_simple_head_layout() -> None:
    """OAR3's OARSTAT_DEFAULT_FIELD: Job id, Job name, Duration, State, User, System message, Queue."""
    text = fmt.jobs_table([job(), job(id=43, name=None, state="Waiting", start_time=0, message="")], T0 + 125)
    assert text.split("\n") == [
        "",
        "  Job id   Job name   Duration   State     User    System message    Queue",
        " " + "─" * 76,
        "  42       test       0:01:05    Running   alice   R=2,W=1:2:3,J=B   default",
        "  43                  -          Waiting   alice                     default",
        "",
    ]


def test_oar3_duration_is_a_timedelta_of_the_run() -> None:
    """OAR3: now - start while running, stop - start once ended, '-' before the start."""
    assert fmt.duration(job(state="Running"), T0 + 60 + 90061) == "1 day, 1:01:01"
    assert fmt.duration(job(state="Terminated", stop_time=T0 + 70), T0 + 999) == "0:00:10"
    assert fmt.duration(job(start_time=0), T0) == "-"


def test_oar3_show_resources_adds_folded_network_addresses() -> None:
    """OAR3's -r: a 'Network addresses' column, a ClusterShell nodeset."""
    lines = fmt.jobs_table([job()], T0 + 61, resources=True).split("\n")
    assert lines[1].endswith("Network addresses") and lines[3].endswith("node[1-2]")


def test_oar3_full_layout() -> None:
    """OAR3's legacy -f: 'id: N', then the Job attributes that are set, dates in local time."""
    text = fmt.job_full(job(exit_code=768, state="Terminated", stop_time=T0 + 70))
    lines = text.split("\n")
    assert lines[0] == "id: 42"
    for expected in [
        "    array_id = 42", "    name = test", "    type = PASSIVE", "    state = Terminated",
        "    user = alice", "    project = default", "    command = ./run.sh", "    exit_code = 768 (3,0,0)",
        "    queue_name = default", "    launching_directory = /home/alice",
        "    submission_time = 2025-03-04 05:06:07", "    start_time = 2025-03-04 05:07:07",
        "    stdout_file = /home/alice/OAR.test.42.stdout", "    stderr_file = /home/alice/OAR.test.42.stderr",
        "    cpuset_name = alice_42", "    types = besteffort", "    walltime = 1:02:03",
        "    network_adresses = node[1-2]", "    exit_status_code = 3", "    events =",
        "        2025-03-04 05:08:07> FRAG_JOB_REQUEST: user frag",
    ]:  # fmt: skip
        assert expected in lines, expected
    assert lines.index("    array_id = 42") < lines.index("    name = test") < lines.index("    user = alice")
    assert "    stop_time = 2025-03-04 05:07:17" in lines and not any(line.startswith("    notify") for line in lines)


def test_oar3_json_keys() -> None:
    """OAR3's -J: the Job model's names (user, queue_name, types...), keyed by id text."""
    data = json.loads(fmt.dump(fmt.jobs_data([job()]), yaml=False))
    entry = data["42"]
    for key in ["id", "name", "user", "state", "queue_name", "command", "submission_time", "start_time",
                "stop_time", "exit_code", "array_id", "array_index", "project", "type", "reservation",
                "launching_directory", "stdout_file", "stderr_file", "cpuset_name", "types", "walltime"]:
        assert key in entry, key
    assert "owner" not in entry and "queue" not in entry  # this project's old names, not OAR3's
    assert entry["submission_time"] == int(T0) and entry["types"] == ["besteffort"]


def test_oar3_yaml_is_the_same_data() -> None:
    """OAR3's -Y: yaml.dump of what -J prints."""
    data = fmt.jobs_data([job()])
    assert yaml.safe_load(fmt.dump(data, yaml=True)) == json.loads(fmt.dump(data, yaml=False))


def test_oar3_compact_shows_an_array_once() -> None:
    """-c: 'prints a single line for array jobs'."""
    lines = fmt.compact([job(id=5, array_id=5), job(id=6, array_id=5), job(id=7, array_id=7)])
    assert [line["id"] for line in lines] == ["5[2]", 7]


def test_oar3_events_table_and_states() -> None:
    """OAR3's -e: Date, job id, Type, Description; -s: 'id: State'."""
    events = [{"job_id": 42, "type": "EXECUTE_JOB", "date": T0, "description": "start"}]
    assert fmt.events_table(events).split("\n")[1:4] == [
        "  Date                  job id   Type          Description",
        " " + "─" * 58,
        "  2025-03-04 05:06:07   42       EXECUTE_JOB   start",
    ]
    assert fmt.job_states([job(), job(id=7, state="Hold")]) == "42: Running\n7: Hold"


def test_oar3_properties_lines_hide_system_properties() -> None:
    """OAR3's -p: "name = 'value'" pairs, without check_resource_system_property's columns."""
    line = fmt.properties_line({"resource_id": 1, "network_address": "node1", "state": "Alive", "core": 2})
    assert line == "network_address = 'node1', core = '2'"


RESOURCES = [
    {"resource_id": 1, "network_address": "node1", "state": "Alive", "cpu": 1, "core": 1, "host": "node1",
     "mem": 64, "available_upto": 2147483647.0, "next_state": "UnChanged"},
    {"resource_id": 2, "network_address": "node1", "state": "Alive", "cpu": 1, "core": 2, "host": "node1",
     "mem": 64, "available_upto": 2147483647.0, "next_state": "UnChanged"},
    {"resource_id": 3, "network_address": "node10", "state": "Dead", "cpu": 2, "core": 3, "host": "node10",
     "mem": None, "available_upto": 0.0, "next_state": "UnChanged"},
    {"resource_id": 4, "network_address": "node2", "state": "Alive", "cpu": 3, "core": 4, "host": "node2",
     "mem": None, "available_upto": 0.0, "next_state": "UnChanged"},
]  # fmt: skip


def test_oar3_oarnodes_default_table() -> None:
    """OAR3's print_resources_table: Id, Network address, State, Available upto (+ -p / -P columns)."""
    assert fmt.resources_table(RESOURCES[:2]).split("\n") == [
        "",
        "",
        "  Id   Network address   State   Available upto",
        " ───────────────────────────────────────────────",
        "  1    node1             Alive   2147483647",
        "  2    node1             Alive   2147483647",
        "",
    ]
    assert fmt.resources_table(RESOURCES[:1], ["core"]).split("\n")[2].split()[-1] == "core"
    every = fmt.resources_table(RESOURCES[:1], show_all=True).split("\n")[2]
    assert "mem" in every and "next_state" not in every


def test_oar3_oarnodes_json_is_a_list() -> None:
    """OAR3's -J: [r.to_dict() for r in resources], the resource id under 'id'."""
    data = json.loads(fmt.dump(fmt.resources_data(RESOURCES), yaml=False))
    assert isinstance(data, list) and data[0]["id"] == 1 and data[0]["available_upto"] == 2147483647


def test_oar3_oarnodes_states_and_hosts_in_natural_order() -> None:
    """OAR3's -s: a block per host (ClusterShell order: node2 before node10); -s -r: 'id: state'."""
    assert fmt.host_states(RESOURCES).split("\n") == [
        "node1", "    1    Alive", "    2    Alive", "node2", "    4    Alive", "node10", "    3    Dead",
    ]
    assert fmt.host_states_data(RESOURCES[:1]) == [{"node1": [{"1": "Alive"}]}]
    assert fmt.resource_states(RESOURCES[2:3]) == "3: Dead"


def test_oar3_oarnodes_summary_per_node() -> None:
    """OAR3's -S: node, status, running jobs, free resources as 'free / total'."""
    lines = fmt.summary(RESOURCES, {1: [42]}, T0).split("\n")
    assert lines[1].split() == ["node", "status", "running", "jobs", "free", "resources"]
    assert lines[3].split() == ["node1", "Alive", "42", "1", "/", "2"]
    assert lines[5].split() == ["node10", "Dead", "0", "/", "1"]


def test_oar3_oarnodes_events_table() -> None:
    """OAR3's -e: Date, hostname, Job id, Type, Description."""
    text = fmt.host_events_table([{"hostname": "node1", "job_id": 4, "type": "FINAUD_ERROR", "date": T0,
                                   "description": "x"}])
    assert text.split("\n")[3].split() == ["2025-03-04", "05:06:07", "node1", "4", "FINAUD_ERROR", "x"]
