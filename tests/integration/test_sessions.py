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
