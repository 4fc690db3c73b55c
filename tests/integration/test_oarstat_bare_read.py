"""oarstat's default table read through the bare driver prints what the SQLAlchemy read prints, byte for byte.

Both reads run on the same database, PostgreSQL and SQLite, for the options
the bare read serves; the jobs hold names and messages with control
characters, unicode, no name at all, several users, arrays and finished jobs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.databases import oar_database

pytestmark = pytest.mark.timeout(120)

NOW = 1_750_000_000.0

JOBS = [
    dict(job_id=1, job_name="run", job_user="alice", state="Running", start_time=NOW - 3725, array_id=1),
    dict(job_id=2, job_name=None, job_user="bob", state="Waiting", array_id=2, message="R=4,W=1:0:0,J=B"),
    dict(job_id=3, job_name="old", job_user="alice", state="Terminated", start_time=NOW - 90, stop_time=NOW - 30,
         array_id=3),
    dict(job_id=4, job_name="evil\x1b[2J\nname\ttab\x9b", job_user="carol", state="Hold", array_id=4,
         message="held\rby\x07me", queue_name="besteffort"),
    dict(job_id=5, job_name="tâche", job_user="alice", state="Waiting", array_id=5, array_index=1),
    dict(job_id=6, job_name="tâche", job_user="alice", state="Waiting", array_id=5, array_index=2),
    dict(job_id=7, job_name="gone", job_user="bob", state="Error", array_id=7, message="no node"),
    dict(job_id=8, job_name="ends", job_user="bob", state="Finishing", start_time=NOW - 86400 * 2 - 5, array_id=8),
    dict(job_id=9, job_name="susp", job_user="dave", state="Suspended", start_time=NOW - 10, array_id=9),
]  # fmt: skip

OPTIONS = [
    [], ["-u", "alice"], ["-u"], ["-u", "nobody"], ["-j", "1"], ["-j", "3", "-j", "7", "-j", "99", "-j", "3"],
    ["-a", "5"], ["-c"], ["-c", "-u", "alice"], ["-u", "bob", "-j", "2", "-j", "8"],
]


def fill() -> None:
    from oar_celery.db.models import Job
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        session.add_all(Job(command="true", submission_time=NOW - 100, **job) for job in JOBS)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp(f"bare-read-{request.param}")
    url = create_pg_database() if request.param == "postgresql" else f"sqlite:///{state / 'oar.db'}"
    try:
        with oar_database(url, redis_url, state):
            fill()
            yield url
    finally:
        if request.param == "postgresql":
            drop_pg_database(url)


def oarstat_output(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from oar_celery.cli import oarstat

    status = oarstat.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("argv", OPTIONS, ids=lambda argv: " ".join(argv) or "plain")
def test_the_bare_read_prints_what_the_sqlalchemy_read_prints(
    database: str, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oar_celery.client import bare_reads

    monkeypatch.setattr(time, "time", lambda: NOW)
    read = bare_reads.table_jobs
    used: list[bool] = []

    def bare(**selection: object) -> object:
        jobs = read(**selection)
        used.append(jobs is not None)
        return jobs

    monkeypatch.setattr(bare_reads, "table_jobs", bare)
    bare_output = oarstat_output(argv, capsys)
    monkeypatch.setattr(bare_reads, "table_jobs", lambda **_: None)
    full_output = oarstat_output(argv, capsys)

    assert used == [True]
    assert bare_output == full_output
    assert full_output[1].count("\n") >= 4  # the table's frame, at least


def test_the_bare_read_leaves_out_the_finished_jobs_and_escapes_control_characters(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW)
    status, out, _ = oarstat_output([], capsys)
    ids = [line.split()[0] for line in out.splitlines()[3:] if line.strip()]
    assert status == 0
    assert ids == ["1", "2", "4", "5", "6", "8", "9"]
    assert "evil\\x1b[2J\\nname\\ttab\\x9b" in out
    assert "1:02:05" in out and "2 days, 0:00:05" in out


def test_the_bare_read_says_a_missing_sqlite_file_as_the_full_read_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oar_celery.client import bare_reads
    from oar_celery.config import settings

    monkeypatch.setenv("OAR_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    settings.cache_clear()
    try:
        bare_output = oarstat_output([], capsys)
        monkeypatch.setattr(bare_reads, "table_jobs", lambda **_: None)
        full_output = oarstat_output([], capsys)
    finally:
        settings.cache_clear()
    assert bare_output == full_output
    assert bare_output[0] == 1 and "no such file" in bare_output[2]


def test_plain_oarstat_loads_neither_sqlalchemy_nor_celery(database: str) -> None:
    probe = (
        "import sys\nfrom oar_celery.cli import oarstat\nstatus = oarstat.main([])\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'celery', 'kombu'})\n"
        "print(status, loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"
