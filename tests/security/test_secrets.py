"""Passwords in the broker and database URLs: read from settings or files, never shown.

The cluster here runs against a private Redis that requires a password
(AUTH), so every process must carry it, and refuses jobs of root as a
production cluster does. After a job has run, no log, no launch spec (what
Flower shows of a task) and no job environment may hold the password.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oar_celery.config import load_settings, mask
from tests.cluster import command_path
from tests.faults.services import PrivateRedis
from tests.security.test_identity import as_user, submit_as

SECRET = "S3cr" + uuid.uuid4().hex[:10]


@given(user=st.text("abcdefgh_-.", max_size=8),
       password=st.text(st.characters(blacklist_characters="/?#", blacklist_categories=("Cs", "Z", "Cc")),
                        min_size=1),
       scheme=st.sampled_from(["redis", "rediss", "postgresql", "postgresql+psycopg2"]))
@settings(max_examples=300, deadline=None)
def test_mask_hides_any_password(user: str, password: str, scheme: str) -> None:
    masked = mask(f"{scheme}://{user}:{password}@db.example:5432/oar?sslmode=require")
    assert masked == f"{scheme}://{user}:****@db.example:5432/oar?sslmode=require"


def test_mask_hides_query_passwords_and_at_signs() -> None:
    assert "p@ss" not in mask("postgresql://oar:p@ss@db/oar")
    assert "hunter2" not in mask("redis://db:6379/0?password=hunter2")


def test_config_command_masks_urls_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "broker").write_text(f"redis://oar:{SECRET}@redis.example:6379/0\n")
    (tmp_path / "db").write_text(f"postgresql://oar:{SECRET}@pg.example/oar\n")
    env = {"PATH": "/usr/bin:/bin", "OAR_STATE_DIR": str(tmp_path), "OAR_CONFIG_FILE": str(tmp_path / "none"),
           "OAR_BROKER_URL_FILE": str(tmp_path / "broker"), "OAR_DATABASE_URL_FILE": str(tmp_path / "db")}
    assert load_settings(env).broker_url.endswith(f":{SECRET}@redis.example:6379/0")
    done = subprocess.run([command_path("oar-celery"), "config"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "OAR_BROKER_URL=redis://oar:****@redis.example:6379/0" in done.stdout
    assert "OAR_DATABASE_URL=postgresql://oar:****@pg.example/oar" in done.stdout
    assert "allow_root_jobs".upper() + "=False" in done.stdout


def test_production_default_refuses_root_jobs() -> None:
    assert load_settings({"OAR_CONFIG_FILE": "/nonexistent"}).allow_root_jobs is False


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), password=SECRET)
    server.start()
    yield server
    server.stop()


@pytest.mark.cluster
def test_no_password_in_logs_specs_or_job_environment(cluster_factory, locked_redis, accounts,  # type: ignore[no-untyped-def]
                                                      shared_dir) -> None:
    cluster = cluster_factory(nodes=2, cores=2, OAR_BROKER_URL=locked_redis.url, OAR_ALLOW_ROOT_JOBS="no")
    refused = cluster.run("oarsub", "-l", "/core=1", "true")
    assert refused.returncode != 0 and "root are refused" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    job_id = submit_as(cluster, accounts["alice"], shared_dir, "env")
    assert cluster.wait_for(job_id)[job_id] == "Terminated"
    assert as_user(cluster, accounts["alice"], "oardel", "999999").returncode != 0
    seen = {path: path.read_text(errors="replace") for path in cluster.state_dir.rglob("*")
            if path.is_file() and path.suffix in (".log", ".out", ".json", ".stdout", ".stderr")}
    seen.update({path: path.read_text(errors="replace") for path in shared_dir.glob("OAR.*")})
    leaks = [str(path) for path, text in seen.items() if SECRET in text]
    assert not leaks, f"the password appears in {leaks}"
    assert any("spec.json" in str(path) for path in seen), "no launch spec was checked"
    assert re.search(r"OAR_JOB_ID=\d+", (shared_dir / f"OAR.{job_id}.stdout").read_text())
