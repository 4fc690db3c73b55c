"""``--sql`` of oarstat, oarnodes, oardel and oarnodesetting: a WHERE clause, never pasted into SQL.

OAR3 pastes the user's text into its query (``filter(text(sql))``): a
``--sql "1=1; DROP TABLE jobs"`` reaches the database. Here the clause is
parsed by the ``-p`` property-filter parser, against the table's column
names and kinds, and evaluated on the rows read: the same language users
write (``project = 'p1' AND job_user LIKE 'a%'``), no injection, and a bad
clause is a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Table

from oar_celery.db.columns import column_kinds

Row = TypeVar("Row")


def kinds(table: Table | Any) -> dict[str, str]:
    """Every column of ``table`` as ``int``, ``float`` or ``str``, for the filter compiler."""
    return column_kinds(table)


def select_rows(
    rows: Iterable[Row], clause: str, columns: Mapping[str, str], values: Callable[[Row], Mapping[str, Any]]
) -> list[Row]:
    """The rows whose ``values`` satisfy ``clause``; RequestError (one line) if it does not parse."""
    from oar_celery.scheduler.errors import RequestError
    from oar_celery.scheduler.filters import compile_filter

    if not clause.strip():
        raise RequestError("empty --sql clause")
    compiled = compile_filter(clause, columns)
    return [row for row in rows if compiled.matches(values(row))]
