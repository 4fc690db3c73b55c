"""Requests from the user's side of the trust boundary, on a cluster whose users prove who they are.

Admin writes (``oarproperty``, ``oar-celery resources add``...) are head requests the head checks for
the admin user: a second unix account is refused in one line. Users need no more than a read-only
database role for ``oarstat`` and ``oarnodes``. A request over a limit is refused by the head before
any database work, even when forged past the command; text outputs escape control characters; Flower
asks for a login unless explicitly told otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from oar_celery.config import settings
from tests.cluster import LocalCluster, command_path
from tests.faults.services import free_port, wait_port

pytestmark = pytest.mark.cluster

AS_USER = Path(__file__).with_name("as_user.py")
ROOT = Path(__file__).parents[2]


def as_user(cluster: LocalCluster, user: str, command: str, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(AS_USER), user, command, *args],
                          env={**cluster.env, "PYTHONPATH": str(ROOT), **(env or {})}, cwd="/",
                          capture_output=True, text=True, timeout=90)


def refused_in_one_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def secure(cluster_factory, accounts) -> LocalCluster:  # type: ignore[no-untyped-def]
    socket = f"/tmp/oar-authd-{uuid.uuid4().hex[:8]}.sock"
    return cluster_factory(nodes=1, cores=2, up_args=("--auth",), OAR_ADMIN_USER="oar", OAR_AUTH_SOCKET=socket)


def _columns(cluster: LocalCluster) -> set[str]:
    return {column["name"] for column in inspect(cluster.engine).get_columns("resources")}


# ------------------------------------------------------------------------------------------ admin writes


def test_oarproperty_delete_by_a_non_admin_is_refused_in_one_line_and_works_for_the_admin(secure, accounts):  # type: ignore[no-untyped-def]
    assert secure.run("oarproperty", "-a", "sec_gpu").returncode == 0
    secure.engine.dispose()
    assert "sec_gpu" in _columns(secure)
    refused = as_user(secure, accounts["alice"], "oarproperty", "-d", "sec_gpu")
    refused_in_one_line(refused, "only root or oar may change resource properties", accounts["alice"])
    secure.engine.dispose()
    assert "sec_gpu" in _columns(secure)
    deleted = secure.run("oarproperty", "-d", "sec_gpu")
    assert deleted.returncode == 0 and "Deleted property: sec_gpu" in deleted.stdout, deleted.stderr
    secure.engine.dispose()
    assert "sec_gpu" not in _columns(secure)


@pytest.mark.parametrize("command,args,words", [
    ("oarproperty", ("-a", "sec_new"), ("only root or oar",)),
    ("admin", ("resources", "add", "evil[1-2]"), ("only root or oar may add resources",)),
    ("oarnodesetting", ("-h", "node1", "-s", "Dead"), ("only root or oar may change resources",)),
    ("oarremoveresource", ("1",), ("only root or oar may remove resources",)),
])
def test_every_admin_write_is_a_head_request_refused_to_a_user(secure, accounts, command, args, words):  # type: ignore[no-untyped-def]
    before = secure.query("SELECT resource_id, network_address, state, next_state FROM resources ORDER BY 1")
    refused = as_user(secure, accounts["bob"], command, *args)
    assert refused.returncode != 0
    assert all(word in refused.stderr for word in words), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    secure.engine.dispose()
    assert secure.query("SELECT resource_id, network_address, state, next_state FROM resources ORDER BY 1") == before
    assert "sec_new" not in _columns(secure)


def test_resources_add_through_the_head_is_idempotent_for_the_admin(secure):  # type: ignore[no-untyped-def]
    first = secure.admin("resources", "add", "extra[1-2]", "--cores", "2")
    assert first.returncode == 0 and "4 resource(s) added on 2 host(s)" in first.stdout, first.stderr
    again = secure.admin("resources", "add", "extra[1-2]", "--cores", "2")
    assert again.returncode == 0 and "2 host(s) already have resources" in again.stdout
    assert secure.scalar("SELECT count(*) FROM resources WHERE network_address LIKE 'extra%'") == 4
    secure.execute("UPDATE resources SET state = 'Dead' WHERE network_address LIKE 'extra%'")
    ids = [str(row[0]) for row in secure.query("SELECT resource_id FROM resources WHERE network_address LIKE 'extra%'")]
    assert secure.run("oarremoveresource", *ids).returncode == 0


# ------------------------------------------------------------------------------------ read-only role


@pytest.fixture(scope="module")
def reader(secure) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A read-only PostgreSQL role made with docs/security.md's SQL; the database URL a user gets."""
    role = f"oar_ro_{uuid.uuid4().hex[:8]}"
    url = make_url(secure.env["OAR_DATABASE_URL"])
    owner = url.username or "postgres"
    sql = (ROOT / "docs" / "security.md").read_text().split("```sql", 1)[1].split("```", 1)[0]
    statements = [s.strip() for s in sql.replace("oar_reader", role).replace("DATABASE oar", f"DATABASE {url.database}")
                  .replace("ROLE oar ", f"ROLE {owner} ").replace("PASSWORD 'change-me'", "").split(";") if s.strip()]
    with secure.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    yield url.set(username=role, password=None).render_as_string(hide_password=False)
    secure.engine.dispose()
    with secure.engine.begin() as connection:
        connection.execute(text(f"DROP OWNED BY {role}"))
        connection.execute(text(f"DROP ROLE {role}"))


def test_oarstat_and_oarnodes_work_with_a_read_only_role_which_cannot_write(secure, reader):  # type: ignore[no-untyped-def]
    job_id = secure.oarsub("-l", "/core=1", "true", env={"OAR_DATABASE_URL": reader})  # the write is the head's
    assert secure.wait_for(job_id)[job_id] == "Terminated"
    env = {"OAR_DATABASE_URL": reader}
    for argv in (["oarstat", "-j", str(job_id)], ["oarstat", "-f", "-j", str(job_id)], ["oarstat", "-J"],
                 ["oarnodes"], ["oarnodes", "-s"], ["oarnodes", "-J"], ["oarproperty", "-l"]):
        done = secure.run(*argv, env=env)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
    assert str(job_id) in secure.run("oarstat", "-j", str(job_id), env=env).stdout
    engine = create_engine(reader)
    try:
        with pytest.raises(Exception, match="read-only|permission denied"), engine.begin() as connection:
            connection.execute(text("UPDATE jobs SET state = 'Error' WHERE job_id = :id"), {"id": job_id})
    finally:
        engine.dispose()
    assert secure.state(job_id) == "Terminated"


# -------------------------------------------------------------------------------------- hostile input


@pytest.fixture
def as_client(secure, monkeypatch):  # type: ignore[no-untyped-def]
    """This test process as a client that bypasses the commands: a request sent as is, with a credential."""
    for key, value in secure.env.items():
        if key.startswith("OAR_"):
            monkeypatch.setenv(key, value)
    settings.cache_clear()
    yield secure
    settings.cache_clear()


def _forged(cluster: LocalCluster, **fields: Any) -> dict[str, Any]:
    request = {"user": "root", "command": "true", "resources": ["/core=1"], "directory": str(cluster.workdir),
               "submission_id": uuid.uuid4().hex, **fields}
    return {"request": request}


HOSTILE = {
    "size": ({"command": "x" * (64 * 1024 + 1)}, "OAR_MAX_COMMAND_SIZE"),
    "walltime": ({"resources": ["/core=1,walltime=900000:00:00"]}, "OAR_MAX_WALLTIME"),
    "huge walltime": ({"resources": ["/core=1,walltime=" + "9" * 5000]}, "OAR_MAX_WALLTIME"),
    "depth": ({"properties": "(" * 40 + "cpu = 1" + ")" * 40}, "OAR_MAX_FILTER_DEPTH"),
    "depth in -l": ({"resources": ["{" + "(" * 40 + "cpu=1" + ")" * 40 + "}/core=1"]}, "OAR_MAX_FILTER_DEPTH"),
    "name": ({"name": "a\nb"}, "control character \\x0a"),
    "command": ({"command": "echo \x1b[2J"}, "control character \\x1b"),
    "array": ({"array": 1_225_672}, "OAR_MAX_ARRAY_SIZE"),
    "array parameters": ({"array": 2, "array_params": ["p"] * 100_001}, "OAR_MAX_ARRAY_SIZE"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_forged_request_over_a_limit_is_refused_by_the_head_before_any_database_work(as_client, case):  # type: ignore[no-untyped-def]
    from oar_celery.client.transport import call
    from oar_celery.protocol.auth import fetch_credential

    fields, limit = HOSTILE[case]
    payload = _forged(as_client, **fields)
    before = as_client.scalar("SELECT count(*) FROM jobs")
    # The table a submission reads first is locked: a head that touched the database would not answer.
    with as_client.engine.begin() as connection:
        connection.execute(text("LOCK TABLE job_submissions IN ACCESS EXCLUSIVE MODE"))
        credential = fetch_credential(settings().auth_socket, payload)
        answer = call("oar.almighty.submit", {**payload, "credential": credential}, timeout=20)
    assert limit in answer["error"] and "\n" not in answer["error"]
    assert as_client.scalar("SELECT count(*) FROM jobs") == before


@pytest.mark.parametrize("argv,limit", [
    (["-l", "/core=1", "x" * (64 * 1024 + 1)], "OAR_MAX_COMMAND_SIZE"),
    (["-l", "/core=1,walltime=900000", "true"], "OAR_MAX_WALLTIME"),
    (["-p", "(" * 40 + "cpu = 1" + ")" * 40, "true"], "OAR_MAX_FILTER_DEPTH"),
    (["-n", "two\nlines", "true"], "control character \\x0a"),
    (["echo \x1b[2J"], "control character \\x1b"),
    (["--array", "100001", "true"], "OAR_MAX_ARRAY_SIZE"),
])
def test_the_command_refuses_hostile_input_in_one_line_naming_the_limit(secure, argv, limit):  # type: ignore[no-untyped-def]
    before = secure.scalar("SELECT count(*) FROM jobs")
    done = secure.run("oarsub", *argv, env={"OAR_BROKER_URL": "redis://127.0.0.1:1/0"})  # never reaches a broker
    refused_in_one_line(done, limit)
    assert secure.scalar("SELECT count(*) FROM jobs") == before


def test_oarstat_and_oarnodes_print_control_characters_of_user_fields_escaped(secure):  # type: ignore[no-untyped-def]
    job_id = secure.oarsub("-n", "plain", "-l", "/core=1", "true")
    secure.wait_for(job_id)
    hostile = "two\nlines\x1b[2J"
    secure.execute("UPDATE jobs SET job_name = :name, command = :name WHERE job_id = :id", name=hostile, id=job_id)
    assert secure.run("oarproperty", "-c", "-a", "sec_label").returncode == 0
    secure.execute("UPDATE resources SET sec_label = :v", v="red\x1b]0;owned\x07")
    outputs = {
        "table": secure.run("oarstat", "-j", str(job_id)).stdout,
        "full": secure.run("oarstat", "-f", "-j", str(job_id)).stdout,
        "nodes": secure.run("oarnodes", "-p", "sec_label").stdout,
    }
    for kind, out in outputs.items():
        assert "\x1b" not in out and "\x07" not in out, kind
    assert "two\\nlines\\x1b[2J" in outputs["table"] and "two\\nlines\\x1b[2J" in outputs["full"]
    assert "red\\x1b]0;owned\\x07" in outputs["nodes"]
    as_json = json.loads(secure.run("oarstat", "-J", "-j", str(job_id)).stdout)
    assert as_json[str(job_id)]["name"] == hostile  # JSON escapes them itself, and keeps the value
    assert secure.run("oarproperty", "-d", "sec_label").returncode == 0


# ---------------------------------------------------------------------------------------------- Flower


def _flower(cluster: LocalCluster, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([command_path("oar-celery"), "flower", "--port", str(port)],
                               env={**cluster.env, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    wait_port(port, timeout=60)
    return process, port


def _status(port: int, path: str, login: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def test_flower_asks_for_a_login_even_when_its_environment_opens_its_api(secure):  # type: ignore[no-untyped-def]
    process, port = _flower(secure, FLOWER_UNAUTHENTICATED_API="true")
    try:
        login = (secure.state_dir / "flower.auth").read_text().strip()
        for path in ("/", "/api/workers", "/api/tasks"):
            assert _status(port, path) == 401, path
            assert _status(port, path, login.partition(":")[0] + ":wrong") == 401, path
        assert _status(port, "/api/workers", login) == 200
    finally:
        _stop(process)


def test_flower_is_open_only_when_explicitly_told(secure):  # type: ignore[no-untyped-def]
    process, port = _flower(secure, OAR_FLOWER_OPEN="yes")
    try:
        assert _status(port, "/") == 200
        assert _status(port, "/api/workers") == 401  # Flower's own guard of its API stays, unless opened too
    finally:
        _stop(process)
