"""Bulk inserts: ``COPY FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere.

A round writes thousands of predictions and assignments; ``COPY`` takes
them in one round trip where a multi-row ``INSERT`` would be parsed and
planned for its size every time.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert
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
