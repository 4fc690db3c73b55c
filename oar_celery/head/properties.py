"""``oarproperty`` on the head: add, delete and rename the property columns of ``resources``.

A property is a column of ``resources``, so changing one is DDL: only the
head, holding the database's write role, does it, for root or the admin user
alone, in one transaction (on PostgreSQL the DDL is transactional: all the
changes of one request or none). The columns are changed with Alembic's
operations, which quote the name, never by pasting text into SQL; every name
is checked again here, since a forged request skips the command's checks.

Alembic (with Mako and Pygments behind it, some 8 MB) is imported by the
request that changes a column, not with the module: every head process
loads this module, and almost none ever runs ``oarproperty``.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import Column, Integer, String, inspect, update
from sqlalchemy.engine import Connection

from oar_celery.config import settings
from oar_celery.db.models import JobResourceDescription, Resource
from oar_celery.db.session import get_engine
from oar_celery.head.lib.errors import Refused
from oar_celery.head.lib.resources import SYSTEM_COLUMNS, forget_columns
from oar_celery.protocol.bus import notify
from oar_celery.protocol.messages import ErrorAnswer, LinesAnswer
from oar_celery.protocol.names import Message

logger = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Words of the filter language and of SQL that a column name must not be.
RESERVED = frozenset(
    {"and", "or", "not", "in", "like", "is", "null", "true", "false", "select", "from", "where", "between"}
)
#: OAR's columns that describe a resource's life, not what it is: not listed as properties.
BOOKKEEPING = frozenset(
    {"resource_id", "state", "drain", "available_upto", "expiry_date", "desktop_computing", "last_job_date"}
)


def protected_columns() -> frozenset[str]:
    """OAR's own columns of ``resources``: never added again, never deleted."""
    return frozenset(Resource.__table__.columns.keys()) | SYSTEM_COLUMNS


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a property column, or None (the command asks the same before sending)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        return f"bad property name {name!r}: lowercase letters, digits and _ only, not starting with a digit"
    if name in RESERVED:
        return f"bad property name {name!r}: it is a reserved word"
    if name in protected_columns():
        return f"{name!r} is a system column of resources, not a property"
    return None


def _checked(name: object) -> str:
    problem = name_problem(name)
    if problem:
        raise Refused(problem)
    return str(name)


def _added(connection: Connection) -> set[str]:
    """The columns an admin added, the only ones that may be deleted or renamed."""
    columns = {column["name"] for column in inspect(connection).get_columns("resources")}
    return columns - protected_columns() - BOOKKEEPING


def change(user: str, adds: list[str], deletes: list[str], renames: list[list[str]], text: bool = False) -> list[str]:
    """One ``oarproperty`` request, all of it or nothing; the lines to print. Raises Refused."""
    if not settings().is_admin(user):
        raise Refused(f"only root or {settings().admin_user} may change resource properties, not {user}")
    if any(len(pair) != 2 for pair in renames):
        raise Refused("a rename is a pair OLD,NEW")
    adds, deletes = [_checked(n) for n in adds], [_checked(n) for n in deletes]
    pairs = [(_checked(old), _checked(new)) for old, new in renames]
    if set(adds) & set(deletes):
        raise Refused("a property cannot be added and deleted at once")
    with get_engine().begin() as connection:
        lines = _apply(connection, adds, deletes, pairs, text=text)
    forget_columns()
    logger.info("properties changed by %s: %s", user, "; ".join(lines))
    notify([Message.SCHEDULING])
    return lines


def _apply(connection: Connection, adds: list[str], deletes: list[str], pairs: list[tuple[str, str]],
           *, text: bool) -> list[str]:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    existing = _added(connection)
    every = existing | protected_columns() | BOOKKEEPING
    operations = Operations(MigrationContext.configure(connection))
    lines: list[str] = []
    for name in adds:
        if name in existing:
            raise Refused(f"property {name!r} already exists")
        operations.add_column("resources", Column(name, String(255) if text else Integer, nullable=True))
        lines.append(f"Added property: {name}")
    for name in deletes:
        if name not in existing:
            raise Refused(f"property {name!r} does not exist")
        operations.drop_column("resources", name)
        lines.append(f"Deleted property: {name}")
    for old, new in pairs:
        if old not in existing:
            raise Refused(f"Cannot rename unexistent property: '{old}'")
        if new in every | set(adds):
            raise Refused(f"cannot rename '{old}' into '{new}'. Property '{new}' already exists.")
        operations.alter_column("resources", old, new_column_name=new)
        connection.execute(
            update(JobResourceDescription)
            .where(JobResourceDescription.res_job_resource_type == old)
            .values(res_job_resource_type=new)
        )
        lines.append(f"Rename property {old} into {new}")
    return lines


def _names(value: object) -> list[str]:
    """A list of names from the wire; anything else (a bare string, a number) is a bad request."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Refused("bad request: property names come as a list of strings")
    return list(value)


def _pairs(value: object) -> list[list[str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        raise Refused("a rename is a pair OLD,NEW")
    return [_names(pair) for pair in value]


def property_task(user: str, adds: list[str] | None = None, deletes: list[str] | None = None,
                  renames: list[list[str]] | None = None, text: bool = False) -> LinesAnswer | ErrorAnswer:
    try:
        return {"results": change(user, _names(adds), _names(deletes), _pairs(renames), text is True)}
    except Refused as refusal:
        return {"error": str(refusal)}
