"""The deployment files: the compose file checked by Docker where it can and by its schema always, the units
by systemd-analyze where it is, and the compose file's init run twice on a real database."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster import command_path
from tests.conftest import create_pg_database, drop_pg_database

DOCKER = Path(__file__).parents[2] / "docker"
SCHEMA = Path(__file__).parents[1] / "data" / "compose-spec.json"
OAR_SERVICES = ("head", "beat", "flower", "node1", "node2")
ENV = {"OAR_DB_PASSWORD": "x", "OAR_REDIS_PASSWORD": "x", "OAR_FLOWER_BASIC_AUTH": "a:x",
       "OAR_DATABASE_URL": "postgresql://oar:x@postgres/oar", "OAR_BROKER_URL": "redis://:x@redis:6379/0"}
SERVICES = {"postgres", "redis", "head", "beat", "flower", "node1", "node2"}


def compose_command() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run([*argv, "version"], capture_output=True).returncode == 0:
            return argv
    return None


def test_compose_file_checked_by_docker() -> None:
    argv = compose_command()
    if argv is None:
        pytest.skip("no working 'docker compose' or 'docker-compose' client on this machine")
    done = subprocess.run([*argv, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"],
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", **ENV}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_compose_file_runs_every_process_with_secrets_as_files() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert set(compose["services"]) >= SERVICES
    text = (DOCKER / "compose.yaml").read_text()
    assert "OAR_DATABASE_URL_FILE" in text and "OAR_BROKER_URL_FILE" in text
    assert "PASSWORD:" not in text.replace("POSTGRES_PASSWORD_FILE:", "")


@pytest.mark.parametrize("unit", sorted(p.name for p in (DOCKER / "systemd").glob("*.service")))
def test_systemd_units(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DOCKER / "systemd" / unit)
    assert parser["Service"]["ExecStart"].startswith("/opt/oar-celery/bin/oar-celery ")
    assert "Restart" in parser["Service"]


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_file_is_valid_under_the_compose_specification_schema() -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    broken = compose()
    broken["services"]["head"]["healthcheck"]["interval"] = ["15s"]
    assert list(validator.iter_errors(broken)), "the schema must catch a wrong healthcheck"


def test_every_oar_process_has_a_healthcheck_and_an_init_and_nodes_get_no_database_secret() -> None:
    services = compose()["services"]
    for name in OAR_SERVICES:
        service = services[name]
        assert service["init"] is True, name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert "/home" in " ".join(service["volumes"]), name
    for name in ("node1", "node2", "flower"):
        text = json.dumps(services[name])
        assert "database" not in text.lower(), name
    assert services["node1"]["healthcheck"]["test"] == ["CMD", "oar-celery", "status", "--process", "node1"]
    assert services["init"]["healthcheck"] == {"disable": True}


def test_the_healthcheck_commands_are_commands_of_the_package() -> None:
    from oar_celery.cli.admin import build_parser

    for name in OAR_SERVICES:
        test = compose()["services"][name]["healthcheck"]["test"]
        if test[:2] == ["CMD", "oar-celery"]:
            build_parser().parse_args(test[2:])  # exits on an unknown option


def test_compose_init_run_twice_declares_each_core_once(redis_url: str, tmp_path: Path) -> None:
    init = compose()["services"]["init"]["command"]
    assert init[:2] == ["sh", "-c"]
    url = create_pg_database()
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
        env.update(OAR_DATABASE_URL=url, OAR_BROKER_URL=redis_url, OAR_STATE_DIR=str(tmp_path),
                   OAR_CONFIG_FILE=str(tmp_path / "absent.conf"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
        for _ in range(2):
            done = subprocess.run(init, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        assert "already have resources, left as they are" in done.stdout
        from sqlalchemy import create_engine

        engine = create_engine(url)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT network_address, count(*) FROM resources GROUP BY network_address ORDER BY 1").all()
        engine.dispose()
        assert rows == [("node1", 2), ("node2", 2)]
    finally:
        drop_pg_database(url)


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    admin = command_path("oar-celery")
    names = []
    for unit in sorted((DOCKER / "systemd").glob("*.service")):
        name = unit.name.replace("@.service", "@node1.service")
        (tmp_path / name).write_text(unit.read_text().replace("/opt/oar-celery/bin/oar-celery", admin))
        names.append(str(tmp_path / name))
    done = subprocess.run([analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (0, "")


def test_systemd_units_read_the_shipped_environment_file() -> None:
    shipped = {line.split("=", 1)[0] for line in (DOCKER / "systemd" / "oar.env").read_text().splitlines()
               if line and not line.startswith("#")}
    from oar_celery.config import setting_names

    assert shipped and shipped <= set(setting_names())
    for unit in (DOCKER / "systemd").glob("oar-[!a]*.service"):
        assert "EnvironmentFile=-/etc/oar/oar.env" in unit.read_text(), unit.name
