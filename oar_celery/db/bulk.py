"""Bulk inserts: ``COPY FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere; Core inserts of row dicts.

A round writes thousands of predictions and assignments; ``COPY`` takes
them in one round trip where a multi-row ``INSERT`` would be parsed and
planned for its size every time.

Rows given as dicts go in as Core statements on the table
(:func:`insert_rows`, :func:`insert_returning`): the same SQL as an ORM
bulk insert, without the ORM's work on every row (its mapper's look at
each dict, key by key), which was most of a submission's cost on the head.
Every row of one call must have the same keys.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, insert
from sqlalchemy.orm import Session


def copy_rows(session: Session, table: Any, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Insert many rows at once: ``COPY FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere."""
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        copy_text(session, table, columns, "".join("\t".join(map(str, row)) + "\n" for row in rows))
        return
    connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def copy_text(session: Session, table: Any, columns: Sequence[str], data: str) -> None:
    """``COPY FROM STDIN`` of rows already in PostgreSQL's text format (PostgreSQL only)."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN", io.StringIO(data))
    finally:
        cursor.close()


def insert_rows(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows (dicts, all with the same keys) in one ``executemany``."""
    if rows:
        session.connection().execute(insert(table), list(rows))


def insert_returning(session: Session, table: Any, column: ColumnElement[Any], rows: Sequence[dict[str, Any]]
                     ) -> list[Any]:
    """Insert the rows (dicts, all with the same keys); ``column``'s values, in the order of the rows."""
    if not rows:
        return []
    statement = insert(table).returning(column, sort_by_parameter_order=True)
    return list(session.connection().execute(statement, list(rows)).scalars())
