"""Pooled connections after PostgreSQL dropped them: an idle one is replaced before use."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.integration.test_scheduling_db import database  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def backend_pid() -> int:
    from oar_celery.db.session import session_scope

    with session_scope() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int, url: str) -> None:
    """Kill one server process from a connection outside the pool, as a restart would."""
    import psycopg2
    from sqlalchemy.engine import make_url

    dsn = make_url(url).render_as_string(hide_password=False).replace("postgresql+psycopg2", "postgresql")
    with psycopg2.connect(dsn) as outside, outside.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    outside.close()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(database: str, monkeypatch) -> None:  # noqa: F811
    from oar_celery.db import session

    monkeypatch.setattr(session, "PING_AFTER_IDLE", 0.0)
    first = backend_pid()
    terminate(first, database)
    assert backend_pid() != first  # no transaction failed


def test_a_connection_dropped_between_two_close_uses_fails_once_then_the_pool_reconnects(database: str) -> None:  # noqa: F811
    first = backend_pid()
    terminate(first, database)
    with pytest.raises(OperationalError):
        backend_pid()  # reused at once: not pinged
    assert backend_pid() != first


def test_a_prepared_statement_is_prepared_once_per_connection_and_again_on_a_new_one(database: str) -> None:  # noqa: F811
    from oar_celery.db.prepared import Prepared
    from oar_celery.db.session import session_scope

    statement = Prepared("oar_test_sum", "SELECT CAST(:a AS integer) + :b", [("a", "integer"), ("b", "integer")])

    def run(a: int, b: int) -> tuple[int, int]:
        with session_scope() as session:
            value = statement.execute(session, {"a": a, "b": b}).scalar_one()
            prepared = session.execute(text(
                "SELECT count(*) FROM pg_prepared_statements WHERE name = 'oar_test_sum'")).scalar_one()
            return value, prepared

    assert run(1, 2) == (3, 1)
    assert run(4, 5) == (9, 1)
    terminate(backend_pid(), database)
    with pytest.raises(OperationalError):
        run(0, 0)  # the dead connection: the pool is dropped
    assert run(6, 7) == (13, 1)  # a new connection, prepared again
