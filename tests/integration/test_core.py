"""A job's whole path, on real processes: oarsub → head → scheduler → Runner → node → head."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def test_job_output_lands_in_its_stdout_file(cluster):
    job_id = cluster.oarsub("-n", "greet", "-l", "/core=1", "echo hello from $OAR_JOB_ID")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    assert (cluster.workdir / f"OAR.greet.{job_id}.stdout").read_text() == f"hello from {job_id}\n"
    assert cluster.job(job_id)["exit_code"] == 0


def test_job_exiting_3_is_terminated_with_its_wait_status(cluster):
    """OAR3 check_end_of_job: a non-zero exit is Terminated; exit_code is the wait status (3 << 8)."""
    job_id = cluster.oarsub("-l", "/core=1", "echo oops >&2; exit 3")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    assert cluster.job(job_id)["exit_code"] == 768
    assert (cluster.workdir / f"OAR.{job_id}.stderr").read_text() == "oops\n"


def test_two_node_job_gets_two_hosts_and_a_nodefile_of_four_lines(cluster):
    job_id = cluster.oarsub("-l", "/nodes=2/core=2", "cat $OAR_NODEFILE; echo walltime=$OAR_JOB_WALLTIME_SECONDS")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    lines = (cluster.workdir / f"OAR.{job_id}.stdout").read_text().splitlines()
    assert lines[:4] == ["node1", "node1", "node2", "node2"]
    assert lines[4] == "walltime=7200"
    hosts = cluster.query(
        "SELECT DISTINCT r.network_address FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = "
        "a.moldable_job_id JOIN resources r ON r.resource_id = a.resource_id WHERE j.job_id = :id", id=job_id
    )
    assert sorted(h for (h,) in hosts) == ["node1", "node2"]


def test_options_name_directory_and_output_paths_are_honoured(cluster, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    job_id = cluster.oarsub(
        "-d", str(target), "-O", "out.%jobid%.txt", "-E", str(tmp_path / "err.txt"),
        "-l", "/core=1,walltime=0:10", "pwd; echo $OAR_WORKDIR; echo problem >&2",
    )
    cluster.wait_for(job_id)
    assert (target / f"out.{job_id}.txt").read_text().splitlines() == [str(target), str(target)]
    assert (tmp_path / "err.txt").read_text() == "problem\n"
    walltime = cluster.scalar("SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = :id",
                              id=job_id)
    assert walltime == 600


def _overlaps(cluster, job_ids):
    """Pairs of jobs that held one resource at the same time, from the state logs."""
    rows = cluster.query(
        "SELECT j.job_id, a.resource_id, MIN(l.date_start), MAX(CASE WHEN l.date_stop = 0 THEN 1e12 "
        "ELSE l.date_stop END) FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job "
        "JOIN job_state_logs l ON l.job_id = j.job_id AND l.job_state IN ('Launching', 'Running', 'Finishing') "
        "WHERE j.job_id = ANY(:ids) GROUP BY j.job_id, a.resource_id", ids=list(job_ids)
    )
    by_resource: dict[int, list[tuple[float, float, int]]] = {}
    for job_id, resource_id, start, stop in rows:
        by_resource.setdefault(resource_id, []).append((start, stop, job_id))
    clashes = []
    for spans in by_resource.values():
        spans.sort()
        for (_, stop, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            if start < stop:
                clashes.append((first, second))
    return clashes


def test_twenty_jobs_on_four_cores_never_share_a_resource(cluster):
    job_ids = [cluster.oarsub("--hold", "-l", "/core=1", "sleep 0.3") for _ in range(14)]
    job_ids += [cluster.oarsub("--hold", "-l", "/nodes=1/core=2", "sleep 0.2") for _ in range(6)]
    released = cluster.run("oarresume", *map(str, job_ids))
    assert released.returncode == 0, released.stderr
    states = cluster.wait_for(job_ids, timeout=120)
    assert set(states.values()) == {"Terminated"}
    assert _overlaps(cluster, job_ids) == []
    assert len(cluster.query(
        "SELECT DISTINCT a.resource_id FROM assigned_resources a JOIN jobs j "
        "ON j.assigned_moldable_job = a.moldable_job_id WHERE j.job_id = ANY(:ids)", ids=job_ids)) == 4


def test_oardel_of_a_waiting_job_puts_it_in_error(cluster):
    job_id = cluster.oarsub("--hold", "-l", "/core=1", "true")
    assert cluster.state(job_id) == "Hold"
    result = cluster.run("oardel", str(job_id))
    assert result.returncode == 0, result.stderr
    assert cluster.wait_for(job_id) == {job_id: "Error"}
    assert "FRAG_JOB_REQUEST" in cluster.events(job_id)


def test_oardel_of_a_running_job_kills_its_process_on_the_node(cluster):
    pidfile = cluster.workdir / "running.pid"
    job_id = cluster.oarsub("-l", "/core=1", f"echo $$ > {pidfile}; exec sleep 300")
    cluster.wait_for(job_id, ["Running"])
    cluster.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), message="job wrote its pid")
    pid = int(pidfile.read_text())
    assert Path(f"/proc/{pid}").exists()
    assert cluster.run("oardel", str(job_id)).returncode == 0
    assert cluster.wait_for(job_id, timeout=30) == {job_id: "Error"}
    cluster.wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, message="job process gone")


def test_oarhold_and_oarresume_of_a_waiting_job(cluster):
    job_id = cluster.oarsub("--hold", "-l", "/core=1", "true")
    assert cluster.state(job_id) == "Hold"
    assert cluster.run("oarresume", str(job_id)).returncode == 0
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}


def test_oarstat_json_carries_the_fields_users_script_against(cluster):
    import json

    job_id = cluster.oarsub("-n", "js", "-l", "/nodes=1/core=1", "true")
    cluster.wait_for(job_id)
    result = cluster.run("oarstat", "-J", "-j", str(job_id))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[str(job_id)]
    # OAR3's keys: its Job model's attribute names, plus what -f adds
    for key in ("id", "name", "user", "state", "queue_name", "command", "submission_time", "start_time", "stop_time",
                "exit_code", "walltime", "network_adresses", "resources", "message", "types", "cpuset_name"):
        assert key in record
    assert record["state"] == "Terminated" and record["name"] == "js"
    assert record["network_adresses"] in ("node1", "node2") and len(record["resources"]) == 1


def _row_counts(cluster):
    return {
        table: cluster.scalar(f"SELECT count(*) FROM {table}")
        for table in ("jobs", "moldable_job_descriptions", "job_resource_groups", "job_types", "job_state_logs")
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-l", "/nodes=two", "true"], "nodes=two"),
        (["-l", "/nodes=1{", "true"], "-l"),
        (["-l", "/nodes=2/", "true"], ""),
        (["-l", "/gpu=1", "true"], "gpu"),
        (["-l", "/core=1,walltime=abc", "true"], "walltime"),
        (["-l", "/core=1,walltime=-1", "true"], "walltime"),
        (["-q", "nosuchqueue", "-l", "/core=1", "true"], "nosuchqueue"),
        (["-d", "/no/such/dir", "-l", "/core=1", "true"], "/no/such/dir"),
        (["-l", "/nodes=3/core=1", "true"], "not enough resources"),
        (["-l", "/core=5", "true"], "not enough resources"),
        (["-l", "/core=1", ""], "command"),
    ],
)
def test_bad_submission_is_refused_in_one_line_and_writes_nothing(cluster, args, fragment):
    before = _row_counts(cluster)
    result = cluster.run("oarsub", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment.lower() in lines[0].lower()
    assert _row_counts(cluster) == before


def test_unknown_or_foreign_job_is_refused(cluster):
    for command in (["oarstat", "-j", "999999"], ["oardel", "999999"], ["oarhold", "999999"]):
        result = cluster.run(*command)
        assert result.returncode != 0, command
        assert len(result.stderr.strip().splitlines()) == 1 and "999999" in result.stderr
    job_id = cluster.oarsub("--hold", "-l", "/core=1", "true")
    cluster.execute("UPDATE jobs SET job_user = 'someoneelse' WHERE job_id = :id", id=job_id)
    if os.geteuid() == 0:
        pytest.skip("root may delete anybody's job; the foreign-job refusal is checked by the security tests")
    result = cluster.run("oardel", str(job_id))
    assert result.returncode != 0 and "someoneelse" in result.stderr


def test_unreachable_broker_and_database_give_one_line(cluster):
    dead_broker = {"OAR_BROKER_URL": "redis://127.0.0.1:1/0", "OAR_CLIENT_TIMEOUT": "3"}
    result = cluster.run("oarsub", "-l", "/core=1", "true", env=dead_broker)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    dead_db = {"OAR_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/none"}
    result = cluster.run("oarstat", env=dead_db)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_oarnodes_lists_resources_as_table_json_and_per_host(cluster):
    import json

    table = cluster.run("oarnodes")
    assert table.returncode == 0 and "node1" in table.stdout and "node2" in table.stdout
    records = json.loads(cluster.run("oarnodes", "-J").stdout)
    assert len(records) == 4
    one = cluster.run("oarnodes", "node2")
    assert "node2" in one.stdout and "node1" not in one.stdout
    assert cluster.run("oarnodes", "nosuchhost").returncode != 0


def test_oarnodesetting_adds_a_resource_with_properties(cluster):
    result = cluster.run("oarnodesetting", "-a", "-h", "node2", "-p", "core=99", "-p", "cpu=42")
    assert result.returncode == 0, result.stderr
    rows = cluster.query("SELECT state, core, cpu FROM resources WHERE core = 99")
    assert rows == [("Alive", 99, 42)]


def test_up_on_sqlite_runs_a_job_with_nothing_configured(tmp_path, quiet_redis):
    """``oar-celery up`` with no database configured: SQLite in the state directory."""
    import subprocess

    from tests.cluster import command_path

    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(OAR_STATE_DIR=str(tmp_path / "state"), OAR_BROKER_URL=quiet_redis, OAR_CONFIG_FILE=str(tmp_path / "x"),
               OAR_ALMIGHTY_TICK="1")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command_path(args[0]), *args[1:]], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    up = run("oar-celery", "up", "--nodes", "2", "--cores", "1", "--flower-port", "0", "--detach")
    assert up.returncode == 0, up.stderr
    try:
        assert (tmp_path / "state" / "oar.db").exists()
        submitted = run("oarsub", "-l", "/nodes=2", "cat $OAR_NODEFILE")
        assert submitted.returncode == 0, submitted.stderr
        job_id = int(submitted.stdout.split("=")[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Terminated" not in run("oarstat", "-s", "-j", str(job_id)).stdout:
            time.sleep(0.3)
        assert (tmp_path / f"OAR.{job_id}.stdout").read_text().split() == ["node1", "node2"]
    finally:
        assert run("oar-celery", "down").returncode == 0
    assert not (tmp_path / "state" / "cluster.json").exists()
