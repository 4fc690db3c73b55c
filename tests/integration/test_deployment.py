"""The deployment files: the compose file checked by Docker where it can, the units always."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).parents[2] / "docker"
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
