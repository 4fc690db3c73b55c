"""oarnodesetting: add resources, change their state or properties, as OAR's oarnodesetting does.

``-h`` is a host name here as in OAR, so help is ``--help`` only. The head
applies the change (NodeChangeState) and answers with one line per change.
"""

from __future__ import annotations

import argparse
import re
import sys

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    add_version,
    error_line,
    escape_controls,
    parser,
    positive_int,
    run,
)

COMMAND = "oarnodesetting"
#: OAR3's exit status when ``--sql`` matches no resource.
EXIT_NO_MATCH = 12
SETTABLE_STATES = ("Alive", "Absent", "Dead")
_PROPERTY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def build_parser() -> Parser:
    p = parser(COMMAND, "Change the state or properties of OAR resources.", help_option="--help")
    add_version(p)
    add = p.add_argument
    add("-a", "--add", action="store_true", help="add a new resource on the host given with -h")
    add(
        "-h",
        "--hostname",
        dest="hosts",
        action="append",
        default=[],
        metavar="HOST",
        help="resources of this host (repeatable)",
    )
    add(
        "-r",
        "--resource",
        dest="resource_ids",
        action="append",
        type=positive_int,
        default=[],
        metavar="ID",
        help="this resource (repeatable)",
    )
    add(
        "-p",
        "--property",
        dest="properties",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a property (repeatable)",
    )
    add("-s", "--state", help="new state: Alive, Absent or Dead")
    add(
        "-n",
        "--no-wait",
        action="store_true",
        help="with -s Absent|Dead: frag the jobs on the resources now instead of waiting for them to end",
    )
    add("-m", "--maintenance", choices=("on", "off"), help="maintenance mode (Absent, and no new job)")
    add("-d", "--drain", choices=("on", "off"), help="drain: no new job, running ones go on")
    add("-f", "--file", metavar="FILE", help="the hosts listed in FILE, one per line")
    add("--sql", metavar="CLAUSE", help="the resources matching this clause on the resources columns")
    add("--last-property-value", metavar="NAME", help="print the value of NAME on the last resource that has one")
    return p


def hosts_of_file(path: str) -> list[str]:
    """OAR3's ``-f``: one host per line (blank lines skipped)."""
    try:
        with open(path) as hostfile:
            return [line.strip() for line in hostfile if line.strip()]
    except OSError as exc:
        raise UsageError(f"cannot read the host file {path!r} ({exc.strerror or exc})") from None


def sql_resources(clause: str) -> list[int]:
    """OAR3's ``--sql``: the resources matching the clause (parsed like ``-p``, never pasted into SQL)."""
    from oar_celery.cli.oarnodes import row_kinds
    from oar_celery.client import api
    from oar_celery.client.sql_filter import select_rows

    rows, _ = api.resources()
    return [row["resource_id"] for row in select_rows(rows, clause, row_kinds(rows), lambda row: row)]


def last_property_value(name: str) -> str | None:
    """OAR3's ``--last-property-value``: the property's value on the resource of highest id that has one."""
    from oar_celery.client import api

    rows, _ = api.resources()
    if rows and name not in rows[0]:
        raise UsageError(f"unknown property {name!r}")
    values = [row[name] for row in sorted(rows, key=lambda r: r["resource_id"]) if row.get(name) is not None]
    return str(values[-1]) if values else None


def parse_property(text: str) -> tuple[str, str]:
    """``NAME=VALUE``; quotes around the value are dropped."""
    match = _PROPERTY.match(text)
    if not match:
        raise UsageError(f"bad property {text!r}: expected NAME=VALUE with NAME an identifier")
    value = match.group(2).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return match.group(1), value


def parse_state(text: str) -> str:
    for state in SETTABLE_STATES:
        if text.strip().lower() == state.lower():
            return state
    raise UsageError(f"bad state {text!r}: expected one of {', '.join(SETTABLE_STATES)}")


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.file:
        args.hosts = [*args.hosts, *hosts_of_file(args.file)]
    if args.last_property_value is not None:
        return args
    if args.add and args.sql is not None:
        raise UsageError("-a and --sql cannot be used together")
    if args.sql is not None and not args.sql.strip():
        raise UsageError("empty --sql clause")
    if not args.add and not args.hosts and not args.resource_ids and args.sql is None:
        args.hosts = [local_host()]  # OAR3: without -h, -r or --sql, the host it runs on
    if args.add and not args.hosts:
        raise UsageError("-a needs -h HOST")
    if args.add and args.resource_ids:
        raise UsageError("-a and -r cannot be used together")
    args.state = parse_state(args.state) if args.state is not None else None
    args.properties = dict(parse_property(text) for text in args.properties)
    if not (args.add or args.state or args.properties or args.maintenance or args.drain):
        raise UsageError("nothing to do: give -a, -s, -p, -m or -d")
    return args


def local_host() -> str:
    """This machine's short host name, as its node worker names itself."""
    import socket

    return socket.gethostname().split(".")[0]


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    if args.last_property_value is not None:
        value = last_property_value(args.last_property_value)
        if value is None:
            error_line(COMMAND, f"Cannot retrieve the last value for {args.last_property_value}. "
                                "Either no resource or no such property exists (yet).")
            return EXIT_FAILURE
        print(escape_controls(value))
        return 0
    if args.sql is not None:
        args.resource_ids = [*args.resource_ids, *sql_resources(args.sql)]
        if not args.resource_ids:
            error_line(COMMAND, f"There are no resource(s) for this SQL WHERE clause ({args.sql})")
            return EXIT_NO_MATCH

    lines = api.node_setting(
        add=args.add,
        hosts=args.hosts,
        resource_ids=args.resource_ids,
        properties=args.properties,
        state=args.state,
        no_wait=args.no_wait,
        maintenance=args.maintenance,
        drain=args.drain,
    )
    for line in lines:
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
