"""Hostile input on every command-line parser: no traceback, one line per refusal, no SQL built from it.

``oarsub`` runs in-process with the network step replaced: what it would
send goes through the head's own admission against a throwaway SQLite
database, with every SQL statement watched. A property filter or any other
user text may travel only as a bound parameter, never inside a statement.
"""

from __future__ import annotations

import contextlib
import io
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from oar_celery.cli import oardel, oarhold, oarresume, oarsub
from oar_celery.client.errors import ClientError
from oar_celery.config import Settings
from oar_celery.scheduler.errors import RequestError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HOSTILE = ["'; DROP TABLE jobs; --", "1=1 OR 'a'='a'", "mem > 64) UNION SELECT * FROM resources --", "\x00", "%s",
           "{{7*7}}", "$(reboot)", "`id`", "a" * 3000, "\n\nTraceback", "é∂ƒ", "--", "/", ":", ","]
text = st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE),
                 st.text(string.ascii_letters + string.digits + "/=:,{}()<>!'\" -+*.", max_size=60))


class Head:
    """Admission of the head on an SQLite database; records every statement it runs."""

    def __init__(self, path: Path) -> None:
        from oar_celery.db.schema import init_database
        from oar_celery.db.session import get_engine

        self.url = f"sqlite:///{path / 'oar.db'}"
        init_database(self.url)
        from oar_celery.db.session import session_scope
        from oar_celery.head.lib.resources import add_resources

        with session_scope(self.url) as session:
            add_resources(session, ["node1", "node2"], cpus=1, cores=2)
        self.statements: list[str] = []
        event.listen(get_engine(self.url), "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def submit(self, request: dict[str, Any]) -> list[int]:
        from oar_celery.db.session import session_scope
        from oar_celery.head.lib import admission

        try:
            with session_scope(self.url) as session:
                checked = admission.check(session, request, Settings(allow_root_jobs=True))
                return admission.insert(session, checked, at=0.0)
        except (RequestError, ValueError, TypeError) as error:
            raise ClientError(str(error)) from None


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    with tempfile.TemporaryDirectory() as directory:
        yield Head(Path(directory))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, head: Head) -> None:
    from oar_celery.client import api

    monkeypatch.setattr(api, "submit", head.submit)
    monkeypatch.setattr(api, "submit_for_reply", lambda request: (head.submit(request), ""))
    monkeypatch.setattr(api, "wait_reservation", lambda job_id, token, timeout=None: {"status": "granted", "start": 0})
    refuse = lambda *a, **k: (_ for _ in ()).throw(ClientError("no head in this test"))  # noqa: E731
    for name in ("delete", "hold", "resume"):
        monkeypatch.setattr(api, name, refuse)


def run(main: Any, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def assert_clean(code: int, err: str) -> None:
    assert isinstance(code, int)
    assert "Traceback (most recent call last)" not in err
    if code != 0:
        assert len(err.strip().splitlines()) == 1, err


def injection_shaped(value: str | None) -> bool:
    """Text that could change a statement if pasted in (short words also name columns: skip those)."""
    return bool(value) and (any(mark in value for mark in ("'", '"', ";", "--")) or len(value.strip()) >= 12)


def assert_no_sql_from(head: Head, *values: str | None) -> None:
    """Such user text must never appear inside a statement, only as a bound parameter."""
    for value in filter(injection_shaped, values):
        assert not any(value in statement for statement in head.statements), value
    head.statements.clear()


@FUZZ
@given(resources=text, walltime=text)
@example(resources="/nodes=2/core=4", walltime="1:00:00")
def test_resources_and_walltime(head: Head, resources: str, walltime: str) -> None:
    assert_clean(*run(oarsub.main, ["-l", f"{resources},walltime={walltime}", "true"]))
    assert_clean(*run(oarsub.main, ["-l", resources, "true"]))


@FUZZ
@given(properties=text)
@example(properties="mem > 64 AND host = 'node1'")
def test_property_filters_never_reach_sql(head: Head, properties: str) -> None:
    head.statements.clear()
    assert_clean(*run(oarsub.main, ["-p", properties, "-l", "/core=1", "true"]))
    assert_no_sql_from(head, properties)


@FUZZ
@given(date=text)
@example(date="2030-12-01 10:00:00")
def test_reservation_dates(head: Head, date: str) -> None:
    assert_clean(*run(oarsub.main, ["-r", date, "-l", "/core=1", "true"]))


@FUZZ
@given(notify=text, name=text, project=text)
def test_notify_name_project(head: Head, notify: str, name: str, project: str) -> None:
    head.statements.clear()
    assert_clean(*run(oarsub.main, ["--notify", notify, "-n", name, "--project", project, "-l", "/core=1", "true"]))
    assert_no_sql_from(head, notify, name, project)


@FUZZ
@given(lines=st.lists(text, max_size=5), binary=st.binary(max_size=40))
def test_array_param_files(head: Head, lines: list[str], binary: bytes, tmp_path: Path) -> None:
    path = tmp_path / "params"
    path.write_bytes("\n".join(lines).encode(errors="surrogatepass") if lines else binary)
    assert_clean(*run(oarsub.main, ["--array-param-file", str(path), "-l", "/core=1", "echo"]))


@FUZZ
@given(argv=st.lists(text, max_size=4))
def test_any_argv_of_every_command(head: Head, argv: list[str]) -> None:
    for main in (oarsub.main, oardel.main, oarhold.main, oarresume.main):
        assert_clean(*run(main, argv))


def test_a_hostile_filter_that_parses_is_stored_as_data(head: Head) -> None:
    """A filter whose quoted value holds SQL reaches the database, as a parameter only."""
    before = len(head.statements)
    properties = "network_address = 'x; DROP TABLE jobs; --' OR network_address != 'y'"
    head.statements.clear()
    code, err = run(oarsub.main, ["-p", properties, "-l", "/core=1", "true"])
    assert (code, err) == (0, ""), err
    assert head.statements, before
    assert_no_sql_from(head, properties, "DROP TABLE jobs")
