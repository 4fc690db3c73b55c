"""The reads behind oarstat and oarnodes, against a throwaway SQLite database."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from sqlalchemy import insert

from oar_celery.cli import oarnodes, oarstat
from oar_celery.client import api, queries
from oar_celery.db import models as m

NOW = 1_750_000_000.0


def fill(url: str) -> None:
    from oar_celery.db.session import session_scope

    with session_scope(url) as s:
        s.add_all(
            [
                m.Resource(resource_id=1, network_address="node1", host="node1", cpu=1, core=1, mem=64),
                m.Resource(resource_id=2, network_address="node1", host="node1", cpu=1, core=2, mem=64),
                m.Resource(resource_id=3, network_address="node2", host="node2", cpu=1, core=1, state="Dead"),
            ]
        )
        s.add_all(
            [
                m.Job(job_id=1, job_name="run", job_user="alice", state="Running", command="./run.sh",
                      submission_time=NOW, start_time=NOW + 5, assigned_moldable_job=11, array_id=1),
                m.Job(job_id=2, job_user="bob", state="Waiting", command="sleep 9", submission_time=NOW + 1,
                      array_id=2, properties="mem > 32"),
                m.Job(job_id=3, job_user="alice", state="Terminated", command="true", submission_time=NOW + 2,
                      stop_time=NOW + 3, exit_code=0, array_id=3),
            ]
        )  # fmt: skip
        s.flush()
        s.add_all(
            [
                m.MoldableJobDescription(moldable_id=11, moldable_job_id=1, moldable_walltime=3600),
                m.MoldableJobDescription(moldable_id=21, moldable_job_id=2, moldable_walltime=60),
                m.MoldableJobDescription(moldable_id=22, moldable_job_id=2, moldable_walltime=120),
                m.MoldableJobDescription(moldable_id=31, moldable_job_id=3, moldable_walltime=7200),
            ]
        )
        s.flush()
        s.add_all(
            [
                m.JobResourceGroup(res_group_id=1, res_group_moldable_id=11, res_group_property="mem > 32"),
                m.JobResourceGroup(res_group_id=2, res_group_moldable_id=21),
                m.JobResourceGroup(res_group_id=3, res_group_moldable_id=22),
            ]
        )
        s.flush()
        s.add_all(
            [
                m.JobResourceDescription(res_job_group_id=1, res_job_resource_type="network_address", res_job_value=1,
                                         res_job_order=0),
                m.JobResourceDescription(res_job_group_id=1, res_job_resource_type="core", res_job_value=2,
                                         res_job_order=1),
                m.JobResourceDescription(res_job_group_id=2, res_job_resource_type="core", res_job_value=-1),
                m.JobResourceDescription(res_job_group_id=3, res_job_resource_type="core", res_job_value=1),
                m.AssignedResource(moldable_job_id=11, resource_id=1),
                m.AssignedResource(moldable_job_id=11, resource_id=2),
                m.JobType(job_id=1, type="besteffort"),
                m.JobType(job_id=1, type="idempotent"),
                m.JobDependency(job_id=2, job_id_required=1),
                m.GanttJobPrediction(moldable_job_id=22, start_time=NOW + 3600),
                m.EventLog(event_id=1, type="FINAUD_ERROR", job_id=1, date=NOW + 10, description="node1 slow"),
                m.EventLog(event_id=2, type="FRAG_JOB_REQUEST", job_id=3, date=NOW + 11, description="frag"),
                m.JobStateLog(job_id=1, job_state="Waiting", date_start=NOW, date_stop=NOW + 5),
                m.JobStateLog(job_id=1, job_state="Running", date_start=NOW + 5),
            ]
        )  # fmt: skip
        s.flush()
        s.add(m.EventLogHostname(event_id=1, hostname="node1"))


@pytest.fixture
def filled(database: str) -> str:
    fill(database)
    return database


def test_list_jobs_full(filled: str) -> None:
    jobs = {job["id"]: job for job in api.jobs(full=True)}
    assert set(jobs) == {1, 2, 3}
    one, two = jobs[1], jobs[2]
    assert one["walltime"] == 3600 and two["walltime"] == 120  # the predicted moldable
    assert one["assigned_resources"] == [1, 2] and one["assigned_network_address"] == ["node1"]
    assert one["types"] == ["besteffort", "idempotent"] and two["dependencies"] == [1]
    assert one["wanted_resources"] == '-l "{mem > 32}/network_address=1/core=2,walltime=1:00:00"'
    assert two["wanted_resources"] == '-l "/core=ALL,walltime=0:01:00" -l "/core=1,walltime=0:02:00"'
    assert two["scheduled_start"] == NOW + 3600 and one["scheduled_start"] is None
    assert [e["type"] for e in one["events"]] == ["FINAUD_ERROR"]
    assert [h["state"] for h in one["state_history"]] == ["Waiting", "Running"]
    assert jobs[3]["assigned_resources"] == [] and jobs[3]["walltime"] == 7200


def test_selection(filled: str) -> None:
    assert [j["id"] for j in api.jobs(current_only=True)] == [1, 2]
    assert [j["id"] for j in api.jobs(user="alice")] == [1, 3]
    assert [j["id"] for j in api.jobs(array_id=3)] == [3]
    assert api.job(2)["owner"] == "bob"


def out_err(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def table_ids(out: str) -> list[str]:
    """The first column of an OAR3 table's rows (edge line, header and rule skipped)."""
    return [line.split()[0] for line in out.splitlines()[3:] if line.strip()]


def test_oarstat_default_shows_current_jobs(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3: without -j/-a/-g, only the jobs not yet finished."""
    assert oarstat.main([]) == 0
    out, _ = out_err(capsys)
    assert table_ids(out) == ["1", "2"]


def test_oarstat_options(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's -s, -u, -f, -J, -Y, -e, -a/--array, -r, -p, --sql."""
    assert oarstat.main(["-j", "3", "-s"]) == 0
    assert out_err(capsys)[0] == "3: Terminated\n"
    assert oarstat.main(["-u", "bob"]) == 0
    assert table_ids(out_err(capsys)[0]) == ["2"]
    assert oarstat.main(["-f", "-j", "1"]) == 0
    out = out_err(capsys)[0]
    assert "id: 1" in out and "    network_adresses = node1" in out and "    walltime = 1:00:00" in out
    assert "    stdout_file = OAR.run.1.stdout" in out
    assert oarstat.main(["-J", "-j", "2"]) == 0
    data = json.loads(out_err(capsys)[0])
    assert list(data) == ["2"] and data["2"]["dependencies"] == [1] and data["2"]["user"] == "bob"
    assert oarstat.main(["-Y", "-j", "2"]) == 0
    assert yaml.safe_load(out_err(capsys)[0])["2"]["queue_name"] == "default"
    assert oarstat.main(["-e", "-j", "1"]) == 0
    assert "FINAUD_ERROR" in out_err(capsys)[0]
    assert oarstat.main(["--array", "2", "-s"]) == 0
    assert out_err(capsys)[0] == "2: Waiting\n"
    assert oarstat.main(["-a", "2", "-s"]) == 0
    assert out_err(capsys)[0] == "2: Waiting\n"
    assert oarstat.main(["-r", "-j", "1"]) == 0
    assert out_err(capsys)[0].splitlines()[3].endswith("node1")
    assert oarstat.main(["-p", "-j", "1"]) == 0
    assert "network_address = 'node1'" in out_err(capsys)[0].splitlines()[0]
    assert oarstat.main(["--sql", "job_user = 'alice' AND state = 'Running'"]) == 0
    assert table_ids(out_err(capsys)[0]) == ["1"]


def test_oarstat_bad_new_options_are_one_line_errors(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every new option's bad input: one line on stderr, exit 2 (or 1 for a bad clause)."""
    for argv in (["-g", "yesterday"], ["-j", "1", "-a", "1"], ["-J", "-Y"], ["-p"], ["-a", "x"]):
        assert oarstat.main(argv) == 2, argv
        err = out_err(capsys)[1]
        assert err.count("\n") == 1 and err.startswith("oarstat: error: "), err
    assert oarstat.main(["--sql", "job_user = 'alice'; DROP TABLE jobs"]) == 1
    assert out_err(capsys)[1].count("\n") == 1
    assert [j["id"] for j in api.jobs()] == [1, 2, 3]  # nothing was pasted into SQL


def test_oarstat_gantt_window(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's -g: jobs running, predicted or submitted between two dates, finished ones included."""
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW))
    stop = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW + 4))
    assert oarstat.main(["-g", f"{start}, {stop}"]) == 0
    assert table_ids(out_err(capsys)[0]) == ["3"]


def test_oarstat_unknown_job(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert oarstat.main(["-j", "1", "-j", "99", "-s"]) == 1
    out, err = out_err(capsys)
    assert out == "1: Running\n" and err == "oarstat: error: job 99 does not exist\n"
    assert oarstat.main(["-e"]) == 2


def test_oarnodes(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's default listing, -s, -l, -J (a list), -Y, -e, -S, -p, -P, --sql."""
    assert oarnodes.main([]) == 0
    assert table_ids(out_err(capsys)[0][1:]) == ["1", "2", "3"]
    assert oarnodes.main(["-s", "node2"]) == 0
    assert out_err(capsys)[0] == "node2\n    3    Dead\n"
    assert oarnodes.main(["-s", "-r", "3"]) == 0
    assert out_err(capsys)[0] == "3: Dead\n"
    assert oarnodes.main(["-l"]) == 0
    assert out_err(capsys)[0] == "node1\nnode2\n"
    assert oarnodes.main(["-J", "-r", "2"]) == 0
    data = json.loads(out_err(capsys)[0])
    assert isinstance(data, list) and data[0]["core"] == 2 and data[0]["id"] == 2
    assert oarnodes.main(["-Y", "-r", "2"]) == 0
    assert yaml.safe_load(out_err(capsys)[0])[0]["core"] == 2
    assert oarnodes.main(["-e", "node1"]) == 2  # -e takes a date (OAR3): node1 is not one
    assert out_err(capsys)[1].count("\n") == 1
    assert oarnodes.main(["node1", "-e"]) == 0
    assert "FINAUD_ERROR" in out_err(capsys)[0]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW + 11))
    assert oarnodes.main(["-e", since]) == 0
    assert "FINAUD_ERROR" not in out_err(capsys)[0]
    assert oarnodes.main(["-S"]) == 0
    assert out_err(capsys)[0].splitlines()[3].split()[:3] == ["node1", "Alive", "1"]
    assert oarnodes.main(["-p", "mem", "-r", "1"]) == 0
    assert out_err(capsys)[0].splitlines()[2].split()[-1] == "mem"
    assert oarnodes.main(["--sql", "state = 'Dead'"]) == 0
    assert table_ids(out_err(capsys)[0][1:]) == ["3"]
    assert oarnodes.main(["--sql", "core = 99"]) == 12  # OAR3's status for "no resource for this clause"
    assert out_err(capsys)[1].count("\n") == 1
    assert oarnodes.main(["--sql", "core = = 1"]) == 1
    assert out_err(capsys)[1].count("\n") == 1


def test_oarnodes_unknown_host(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert oarnodes.main(["node1", "node9"]) == 1
    out, err = out_err(capsys)
    assert "node1" in out and err == "oarnodes: error: unknown host 'node9'\n"
    assert oarnodes.main(["node9", "-e"]) == 1
    assert out_err(capsys)[1] == "oarnodes: error: unknown host 'node9'\n"
    assert oarnodes.main(["-r", "77"]) == 1


def test_missing_database_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from oar_celery.config import settings

    monkeypatch.setenv("OAR_DATABASE_URL", "sqlite:////no/such/dir/oar.db")
    settings.cache_clear()
    assert oarstat.main([]) == 1
    assert (
        out_err(capsys)[1]
        == "oarstat: error: cannot reach the database at sqlite:////no/such/dir/oar.db (no such file)\n"
    )


def test_ten_thousand_jobs_are_all_listed_with_their_details(database: str) -> None:
    """Every one of 10,000 jobs in the table and in the details; how fast is ``python -m bench startup``'s."""
    from oar_celery.client import oar3_format as fmt
    from oar_celery.db.session import session_scope

    rows: list[dict[str, Any]] = [
        {"job_id": i, "job_user": f"u{i % 7}", "state": "Waiting", "submission_time": NOW + i, "command": "true"}
        for i in range(1, 10_001)
    ]
    with session_scope(database) as s:
        s.execute(insert(m.Job), rows)
        s.execute(
            insert(m.MoldableJobDescription),
            [{"moldable_job_id": i, "moldable_walltime": 60} for i in range(1, 10_001)],
        )
    text = fmt.jobs_table(api.jobs(current_only=True), NOW)
    assert text.count("\n") == 10_003  # edge line, header, rule, 10,000 rows, edge line
    full = api.jobs(current_only=True, full=True)
    assert len(full) == 10_000 and full[-1]["walltime"] == 60
    assert queries.job_selection(current_only=True)
