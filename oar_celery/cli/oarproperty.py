"""oarproperty: add, list and delete resource properties, as OAR's oarproperty does.

A property is a column of ``resources`` (so a filter such as ``-p "mem > 64"``
names it directly). Adding, deleting and renaming one is a request to the
head (:mod:`oar_celery.head.properties`), which checks that the user is root
or the admin user and changes the columns in one transaction: this command
never writes to the database, so a user needs at most a read-only role
(for ``-l``). Names are checked here too, so a bad one is refused at once.
"""

from __future__ import annotations

import sys

from oar_celery.cli.common import EXIT_FAILURE, Parser, UsageError, add_version, emit, error_line, parser, run

COMMAND = "oarproperty"


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


def check_name(name: str) -> str:
    """A property name that is safe and free to use as a column; UsageError otherwise (the head checks again)."""
    from oar_celery.head.properties import name_problem

    problem = name_problem(name)
    if problem:
        raise UsageError(problem)
    return name


def list_properties() -> list[str]:
    """Property columns: OAR's default ones (``host``, ``cpu``, ``mem``...) and those added."""
    from sqlalchemy import inspect

    from oar_celery.db.session import get_engine
    from oar_celery.head.lib.resources import SYSTEM_COLUMNS
    from oar_celery.head.properties import BOOKKEEPING

    columns = inspect(get_engine()).get_columns("resources")
    hidden = SYSTEM_COLUMNS | BOOKKEEPING
    return [column["name"] for column in columns if column["name"] not in hidden]


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
    lines: list[str] = []
    if adds or deletes or renames:
        from oar_celery.client import api
        from oar_celery.client.errors import ClientError

        try:
            lines = api.change_properties(adds, deletes, renames, text=args.varchar)
        except ClientError as error:
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
