"""Engines and sessions, one engine per process.

Worker pools fork: an engine created before the fork must not be shared with
the children, so the engine is keyed by the process id.

Every process reconnects by itself after PostgreSQL restarts: a pooled
connection that sat idle for more than :data:`PING_AFTER_IDLE` seconds is
pinged before use and replaced if it is dead. A busy head checks out a
connection several times per Almighty cycle, a few milliseconds apart;
pinging each time (``pool_pre_ping``) cost a round trip per transaction. A
connection that breaks between two such close uses fails one transaction,
which makes the pool drop every connection; the module's next run reconnects.

PostgreSQL connections price a random page read at ``OAR_DB_RANDOM_PAGE_COST``
(1.1, the usual value for data in memory or on SSDs): with the default 4,
the planner scanned a 2,000-row table rather than look 8 rows up by key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from oar_celery.config import settings

_engines: dict[tuple[int, str], Engine] = {}

#: Seconds a pooled connection may sit idle before it is pinged at checkout.
PING_AFTER_IDLE = 1.0


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    cost = settings().db_random_page_cost
    options = {"options": f"-c random_page_cost={cost}"} if cost > 0 and url.startswith("postgresql") else {}
    engine = create_engine(url, pool_size=5, max_overflow=5, pool_recycle=1800, connect_args=options)
    event.listen(engine, "checkin", _note_idle_since)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _note_idle_since(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Ping a connection that sat idle; a dead one makes the pool connect again (up to three tries)."""
    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as error:  # noqa: BLE001 - any failure means the connection is unusable
        raise exc.DisconnectionError(f"stale connection: {error}") from error


def get_engine(url: str | None = None) -> Engine:
    """The engine of this process for ``url`` (default: the configured one)."""
    url = url or settings().database
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = _make_engine(url)
    return engine


def dispose_engines() -> None:
    """Forget the engines (after a fork, or at the end of a test)."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A short transaction: committed on success, rolled back on error."""
    with Session(bind=get_engine(url), expire_on_commit=False) as session, session.begin():
        yield session


def execute(session: Session, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
    """Run a read on the session's connection and transaction, past the ORM's execution layer.

    A select of columns gives the same rows either way; through
    ``Session.execute`` each of a cycle's dozen reads cost 70-80 µs more of
    the ORM's bookkeeping (its compile state, its result set-up), for no
    object to load. Nothing pending is flushed first: for reads of rows the
    session has not added.
    """
    return session.connection().execute(statement, parameters)


def now() -> float:
    """The time every module stamps into the database."""
    return time.time()
