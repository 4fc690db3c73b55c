"""Throwaway PostgreSQL databases, for the test suite and the benchmarks.

Each test session or benchmark run gets a database of its own on a server
it may administer (``postgresql://postgres@127.0.0.1:5432`` on a developer's
machine), and drops it at the end, so runs on one machine never share rows.
"""

from __future__ import annotations

import uuid


def _administer(server: str, statement: str) -> None:
    """Run one statement on the server's ``postgres`` database, outside a transaction
    (``CREATE`` and ``DROP DATABASE`` refuse to run inside one)."""
    import psycopg2

    connection = psycopg2.connect(f"{server}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_database(server: str, *, prefix: str = "oar_scratch") -> str:
    """A new empty database on ``server`` (``postgresql://user@host:port``); its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _administer(server, f'CREATE DATABASE "{name}"')
    return f"{server.replace('postgresql://', 'postgresql+psycopg2://')}/{name}"


def drop_database(server: str, url: str) -> None:
    """Drop a database made by :func:`create_database`, even with sessions still open on it."""
    _administer(server, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)')
