"""oarstat's default table read through the database driver alone, without SQLAlchemy.

``oarstat`` as a user types it (the current jobs, or those of ``-u``, ``-j``,
``-a``) is the read a cluster serves most; importing SQLAlchemy and the models
cost it about 0.3 s of CPU for a query of a few milliseconds. This module
reads the columns the table shows with one statement through psycopg2 or
sqlite3, and fails with the same one line as :mod:`.queries`. A database
URL it does not know how to hand to the driver (another driver, query
options, a password holding ``@``) returns ``None``: the caller reads
through :mod:`.queries` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oar_celery.client.errors import ClientError, reason
from oar_celery.config import mask, settings
from oar_celery.protocol.states import CURRENT_STATES

#: The ``jobs`` columns the default table (and ``-c``) shows, under :data:`queries.JOB_COLUMNS`' names.
TABLE_COLUMNS = {
    "id": "job_id", "name": "job_name", "owner": "job_user", "state": "state", "queue": "queue_name",
    "message": "message", "start_time": "start_time", "stop_time": "stop_time", "array_id": "array_id",
}
_POSTGRESQL_SCHEMES = ("postgresql", "postgresql+psycopg2")
_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")


def sqlite_path(url: str) -> str:
    """The file a SQLite URL names ('' or ``:memory:`` for a memory database)."""
    return url.split("///", 1)[-1].split("?", 1)[0]


def sqlite_exists(url: str) -> bool:
    """Whether a SQLite URL names an existing file (or memory): a reader never creates the database."""
    path = sqlite_path(url)
    return not path or path == ":memory:" or Path(path).is_file()


def table_statement(
    placeholder: str,
    *,
    job_ids: Sequence[int] | None = None,
    user: str | None = None,
    array_id: int | None = None,
    current_only: bool = False,
) -> tuple[str, list[Any]]:
    """The one ``SELECT`` of the table's jobs, ordered by id, and its parameters (as :func:`queries.job_selection`)."""
    conditions: list[str] = []
    params: list[Any] = []
    if job_ids is not None:
        ids = list(job_ids)
        conditions.append(f"job_id IN ({', '.join([placeholder] * len(ids))})" if ids else "1 = 0")
        params += ids
    if user is not None:
        conditions.append(f"job_user = {placeholder}")
        params.append(user)
    if array_id is not None:
        conditions.append(f"array_id = {placeholder}")
        params.append(array_id)
    if current_only:
        conditions.append(f"state IN ({', '.join([placeholder] * len(CURRENT_STATES))})")
        params += [str(state) for state in CURRENT_STATES]
    columns = ", ".join(TABLE_COLUMNS.values())
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {columns} FROM jobs{where} ORDER BY job_id", params


def table_jobs(**selection: Any) -> list[dict[str, Any]] | None:
    """The jobs of the default table as dicts, or ``None`` when the URL needs the SQLAlchemy path."""
    config = settings()
    url = config.database
    scheme, _, rest = url.partition("://")
    if "?" in rest:
        return None
    if scheme in _SQLITE_SCHEMES:
        return _sqlite_jobs(url, selection)
    if scheme in _POSTGRESQL_SCHEMES and rest.count("@") <= 1:
        return _postgresql_jobs(url, rest, config.db_random_page_cost, selection)
    return None


def _sqlite_jobs(url: str, selection: dict[str, Any]) -> list[dict[str, Any]] | None:
    import sqlite3

    path = sqlite_path(url)
    if not path or path == ":memory:":
        return None  # a memory database is the process's own: nothing to read from outside it
    if not Path(path).is_file():
        raise ClientError(f"cannot reach the database at {mask(url)} (no such file)")
    sql, params = table_statement("?", **selection)
    try:
        connection = sqlite3.connect(path, timeout=30)
        try:
            return _rows(connection.execute(sql, params))
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise _unreachable(url, exc) from exc


def _postgresql_jobs(url: str, rest: str, cost: float, selection: dict[str, Any]) -> list[dict[str, Any]]:
    """``rest``: the URL after its scheme; ``cost``: the head's ``random_page_cost`` (0: the server's)."""
    import psycopg2

    options: dict[str, Any] = {"options": f"-c random_page_cost={cost}"} if cost > 0 else {}
    sql, params = table_statement("%s", **selection)
    try:
        connection = psycopg2.connect("postgresql://" + rest, **options)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return _rows(cursor)
        finally:
            connection.close()
    except psycopg2.Error as exc:
        raise _unreachable(url, exc) from exc


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = list(TABLE_COLUMNS)
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _unreachable(url: str, exc: BaseException) -> ClientError:
    """The line :func:`queries.reading` gives for a driver's error."""
    return ClientError(f"cannot reach the database at {mask(url)} ({reason(exc)})")
