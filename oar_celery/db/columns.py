"""A table's columns by the kind the filter compiler knows: ``int``, ``float`` or ``str``.

The ``-p`` filters of ``oarsub`` and the ``--sql`` clauses of the commands
are compiled against these kinds, never pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Float, Integer, Numeric


def column_kinds(table: Any, skip: Collection[str] = ()) -> dict[str, str]:
    """Every column of ``table`` (but ``skip``) by name: ``int``, ``float`` or ``str``."""
    kinds: dict[str, str] = {}
    for column in table.columns:
        if column.name in skip:
            continue
        if isinstance(column.type, Integer):
            kinds[column.name] = "int"
        elif isinstance(column.type, Float | Numeric):
            kinds[column.name] = "float"
        else:
            kinds[column.name] = "str"
    return kinds
