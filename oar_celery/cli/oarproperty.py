"""oarproperty: add, list and delete resource properties, as OAR's oarproperty does.

A property is a column of ``resources`` (so a filter such as ``-p "mem > 64"``
names it directly). Like OAR's, this is an admin tool that talks to the
database itself: the columns are changed with SQLAlchemy DDL (Alembic's
operations, which quote the name and work on PostgreSQL and SQLite), never by
pasting text into SQL, and the name must be a plain identifier that is neither
one of OAR's own columns nor a word of the filter language. Processes that
cache the table's columns reflect it again within seconds (and at once when
they meet a name they do not know).
"""

from __future__ import annotations

import re
import sys

from oar_celery.cli.common import EXIT_FAILURE, Parser, UsageError, add_version, emit, error_line, parser, run

COMMAND = "oarproperty"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Words of the filter language and of SQL that a column name must not be.
RESERVED = frozenset(
    {"and", "or", "not", "in", "like", "is", "null", "true", "false", "select", "from", "where", "between"}
)
#: OAR's columns that describe a resource's life, not what it is: not listed as properties.
BOOKKEEPING = frozenset(
    {"resource_id", "state", "drain", "available_upto", "expiry_date", "desktop_computing", "last_job_date"}
)


def build_parser() -> Parser:
    p = parser(COMMAND, "Manage resource properties (columns of the resources table).")
    add_version(p)
    add = p.add_argument
    add("-a", "--add", action="append", default=[], metavar="NAME", help="add a property (an integer by default)")
    add("-c", "--varchar", action="store_true", help="the added properties hold text (VARCHAR(255))")
    add("-d", "--delete", action="append", default=[], metavar="NAME", help="delete a property")
    add("-l", "--list", action="store_true", help="list the properties")
    add("-q", "--quiet", action="store_true", help="print nothing on success")
    add("-t", "--type", dest="show_type", action="store_true", help="with -l: show the type of each property")
    add("-r", "--rename", action="append", default=[], metavar="OLD,NEW", help="rename a property (OAR3)")
    return p


def parse_rename(text: str) -> tuple[str, str]:
    """``OLD,NEW``, both checked as property names."""
    old, sep, new = text.partition(",")
    if not sep or not old.strip() or not new.strip():
        raise UsageError(f"bad --rename {text!r}: expected OLD,NEW")
    return check_name(old.strip()), check_name(new.strip())


def property_types() -> dict[str, str]:
    """Each property's SQL type, as OAR3's ``-t`` shows it."""
    from sqlalchemy import inspect

    from oar_celery.db.session import get_engine

    return {column["name"]: str(column["type"]) for column in inspect(get_engine()).get_columns("resources")}


def rename(pairs: list[tuple[str, str]]) -> list[str]:
    """OAR3's ``--rename``: the column, and the requests that name it as a level (``-l /OLD=2``)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import update

    from oar_celery.db.models import JobResourceDescription
    from oar_celery.db.session import get_engine
    from oar_celery.head.lib.resources import forget_columns

    existing = added_properties()
    every = set(list_properties()) | protected_columns()
    lines = []
    with get_engine().begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        for old, new in pairs:
            if old not in existing:
                raise UsageError(f"Cannot rename unexistent property: '{old}'")
            if new in every:
                raise UsageError(f"cannot rename '{old}' into '{new}'. Property '{new}' already exists.")
            operations.alter_column("resources", old, new_column_name=new)
            connection.execute(
                update(JobResourceDescription)
                .where(JobResourceDescription.res_job_resource_type == old)
                .values(res_job_resource_type=new)
            )
            lines.append(f"Rename property {old} into {new}")
    forget_columns()
    return lines


def protected_columns() -> frozenset[str]:
    """OAR's own columns of ``resources``: never added again, never deleted."""
    from oar_celery.db.models import Resource
    from oar_celery.head.lib.resources import SYSTEM_COLUMNS

    return frozenset(Resource.__table__.columns.keys()) | SYSTEM_COLUMNS


def check_name(name: str) -> str:
    """A property name that is safe and free to use as a column; UsageError otherwise."""
    if not _IDENTIFIER.match(name):
        raise UsageError(f"bad property name {name!r}: lowercase letters, digits and _ only, not starting with a digit")
    if name in RESERVED:
        raise UsageError(f"bad property name {name!r}: it is a reserved word")
    if name in protected_columns():
        raise UsageError(f"{name!r} is a system column of resources, not a property")
    return name


def list_properties() -> list[str]:
    """Property columns: OAR's default ones (``host``, ``cpu``, ``mem``...) and those added."""
    from sqlalchemy import inspect

    from oar_celery.db.session import get_engine
    from oar_celery.head.lib.resources import SYSTEM_COLUMNS

    columns = inspect(get_engine()).get_columns("resources")
    hidden = SYSTEM_COLUMNS | BOOKKEEPING
    return [column["name"] for column in columns if column["name"] not in hidden]


def added_properties() -> set[str]:
    """The columns an admin added, the only ones that may be deleted."""
    return set(list_properties()) - protected_columns()


def alter(adds: list[str], deletes: list[str], *, text: bool) -> list[str]:
    """Add and delete columns in one transaction; the lines to print."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import Column, Integer, String

    from oar_celery.db.session import get_engine
    from oar_celery.head.lib.resources import forget_columns

    existing = added_properties()
    for name in adds:
        if name in existing:
            raise UsageError(f"property {name!r} already exists")
    for name in deletes:
        if name not in existing:
            raise UsageError(f"property {name!r} does not exist")
    lines: list[str] = []
    with get_engine().begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        for name in adds:
            operations.add_column("resources", Column(name, String(255) if text else Integer, nullable=True))
            lines.append(f"Added property: {name}")
        for name in deletes:
            operations.drop_column("resources", name)
            lines.append(f"Deleted property: {name}")
    forget_columns()
    return lines


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not (args.add or args.delete or args.list or args.rename):
        raise UsageError("nothing to do: give -a NAME, -d NAME, -r OLD,NEW or -l", hint=True)
    if args.show_type and not args.list:
        raise UsageError("-t goes with -l")
    renames = [parse_rename(text) for text in args.rename]
    if args.varchar and not args.add:
        raise UsageError("-c goes with -a")
    adds = [check_name(name) for name in args.add]
    deletes = [check_name(name) for name in args.delete]
    if set(adds) & set(deletes):
        raise UsageError("a property cannot be added and deleted at once")
    try:
        lines = alter(adds, deletes, text=args.varchar) if adds or deletes else []
        lines += rename(renames) if renames else []
    except UsageError as error:
        error_line(COMMAND, error)
        return EXIT_FAILURE
    if not args.quiet:
        emit("\n".join(lines))
    if args.list:
        types = property_types() if args.show_type else {}
        emit("\n".join(f"{name} ({types[name]})" if types else name for name in list_properties()))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
