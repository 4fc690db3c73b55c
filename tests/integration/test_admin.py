"""The admin's command: configuration, schema, resources, and processes started by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import create_engine, inspect

from tests.cluster import command_path
from tests.conftest import create_pg_database, drop_pg_database

OAR_TABLES = {
    "jobs", "moldable_job_descriptions", "job_resource_groups", "job_resource_descriptions", "assigned_resources",
    "resources", "resource_logs", "queues", "job_types", "job_dependencies", "job_state_logs", "event_logs",
    "event_log_hostnames", "frag_jobs", "gantt_jobs_predictions", "gantt_jobs_resources", "admission_rules",
}


@pytest.fixture
def admin_env(tmp_path, redis_url):
    url = create_pg_database()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(OAR_STATE_DIR=str(tmp_path), OAR_DATABASE_URL=url, OAR_BROKER_URL=redis_url,
               OAR_CONFIG_FILE=str(tmp_path / "absent.conf"))
    yield env
    drop_pg_database(url)


def admin(env, *args):
    return subprocess.run([command_path("oar-celery"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_db_init_creates_oar_tables_and_queues_and_can_run_twice(admin_env):
    assert admin(admin_env, "db", "init").returncode == 0
    assert admin(admin_env, "db", "init").returncode == 0
    engine = create_engine(admin_env["OAR_DATABASE_URL"])
    assert set(inspect(engine).get_table_names()) >= OAR_TABLES
    with engine.connect() as connection:
        queues = dict(connection.exec_driver_sql("SELECT queue_name, priority FROM queues").all())
    engine.dispose()
    assert queues == {"admin": 10, "default": 2, "besteffort": 0}


def test_db_upgrade_then_reset_gives_an_empty_schema_with_the_default_queues(admin_env):
    assert admin(admin_env, "db", "upgrade").returncode == 0
    assert admin(admin_env, "db", "init").returncode == 0
    assert admin(admin_env, "resources", "add", "--offline", "node1").returncode == 0
    engine = create_engine(admin_env["OAR_DATABASE_URL"])
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO queues (queue_name, priority, scheduler_policy, state) "
                                   "VALUES ('extra', 1, 'kamelot', 'Active')")
    refused = admin(admin_env, "db", "reset")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM resources").scalar() == 1
    assert admin(admin_env, "db", "reset", "--yes").returncode == 0
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM resources").scalar() == 0
        queues = dict(connection.exec_driver_sql("SELECT queue_name, priority FROM queues").all())
    engine.dispose()
    assert queues == {"admin": 10, "default": 2, "besteffort": 0}


def test_resources_add_creates_one_resource_per_core_of_a_nodeset(admin_env):
    admin(admin_env, "db", "init")
    result = admin(admin_env, "resources", "add", "--offline", "node[1-4]", "--cpus", "1", "--cores", "4")
    assert result.returncode == 0, result.stderr
    engine = create_engine(admin_env["OAR_DATABASE_URL"])
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT network_address, count(*), count(DISTINCT cpu), count(DISTINCT core) FROM resources "
            "GROUP BY network_address ORDER BY network_address"
        ).all()
    engine.dispose()
    assert rows == [(f"node{i}", 4, 1, 4) for i in range(1, 5)]
    bad = admin(admin_env, "resources", "add", "--offline", "node[1-")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_config_prints_settings_with_passwords_masked(admin_env):
    env = {**admin_env, "OAR_BROKER_URL": "redis://oar:s3cret@127.0.0.1:6379/3"}
    result = admin(env, "config")
    assert result.returncode == 0
    assert "s3cret" not in result.stdout
    assert "OAR_BROKER_URL=redis://oar:****@127.0.0.1:6379/3" in result.stdout


def test_config_reads_oar_conf_file_and_secret_files(admin_env, tmp_path):
    secret = tmp_path / "db-url"
    secret.write_text("postgresql+psycopg2://oar:hidden@db.example.org/oar\n")
    conf = tmp_path / "oar.conf"
    conf.write_text(f'# OAR style\nOAR_SECURITY_TIME="30"\nOAR_DATABASE_URL_FILE="{secret}"\n')
    env = {key: value for key, value in admin_env.items() if key != "OAR_DATABASE_URL"}
    env["OAR_CONFIG_FILE"] = str(conf)
    result = admin(env, "config")
    assert "OAR_SECURITY_TIME=30" in result.stdout
    assert "OAR_DATABASE_URL=postgresql+psycopg2://oar:****@db.example.org/oar" in result.stdout
    assert "hidden" not in result.stdout


def test_a_node_worker_started_by_hand_joins_the_cluster(cluster_factory):
    cluster = cluster_factory(nodes=1, cores=1)
    assert cluster.admin("resources", "add", "node9", "--cores", "2").returncode == 0
    worker = subprocess.Popen(
        [command_path("oar-celery"), "worker", "node", "--hostname", "node9"],
        env={**cluster.env, "OAR_PROCESS_KIND": "node-node9"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        job_id = cluster.oarsub("-l", "/nodes=1/core=2", "cat $OAR_NODEFILE")
        assert cluster.wait_for(job_id, timeout=60) == {job_id: "Terminated"}
        assert (cluster.workdir / f"OAR.{job_id}.stdout").read_text() == "node9\nnode9\n"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def test_a_pickled_message_is_refused_by_the_head(cluster_factory):
    from celery import Celery

    cluster = cluster_factory(nodes=1, cores=1)
    sender = Celery("intruder", broker=cluster.env["OAR_BROKER_URL"])
    sender.conf.update(task_serializer="pickle", accept_content=["pickle", "json"])
    request = {"user": "root", "command": "touch pwned", "resources": ["/core=1"], "directory": str(cluster.workdir)}
    sender.send_task("oar.almighty.submit", args=[request], queue="oar.head", serializer="pickle")
    time.sleep(3)
    assert cluster.scalar("SELECT count(*) FROM jobs") == 0
    head_log = (cluster.state_dir / "log" / "oar-head.log").read_text()
    assert "ContentDisallowed" in head_log or "disallowed" in head_log.lower()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_ctrl_c_on_up_stops_every_process(admin_env, quiet_redis):
    import json

    env = {key: value for key, value in admin_env.items() if key != "OAR_DATABASE_URL"}
    env["OAR_BROKER_URL"] = quiet_redis
    up = subprocess.Popen([command_path("oar-celery"), "up", "--nodes", "1", "--cores", "1", "--flower-port", "0"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_file = os.path.join(env["OAR_STATE_DIR"], "cluster.json")
    try:
        output = ""
        while "cluster up" not in output:
            line = up.stdout.readline()
            assert line, f"up ended before the cluster was up: {output}"
            output += line
        with open(pid_file) as pids_json:
            pids = [entry["pid"] for entry in json.load(pids_json)]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        assert "cluster stopped" in up.stdout.read()
    finally:
        if up.poll() is None:
            up.kill()
        admin(env, "down")
    assert not any(_running(pid) for pid in pids)
    assert not os.path.exists(pid_file)
