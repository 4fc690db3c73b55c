"""oarnodes: show resources, their states and the events of hosts, with OAR3's options and formats."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    add_version,
    emit,
    error_line,
    escaped,
    parser,
    positive_int,
    run,
)

COMMAND = "oarnodes"
#: OAR3's exit status when ``--sql`` matches no resource.
EXIT_NO_MATCH = 12


def build_parser() -> Parser:
    p = parser(COMMAND, "Show OAR resources (all, or those of the given hosts).")
    add_version(p)
    add = p.add_argument
    add("hosts", nargs="*", metavar="HOST", help="hosts to show (default: all)")
    add("-r", "--resource", dest="resource_ids", action="append", type=positive_int, metavar="ID",
        help="this resource (repeatable)")
    add("-p", "--property", dest="properties", action="append", default=[], metavar="NAME",
        help="add this property as a column (repeatable)")
    add("-P", "--show-all-properties", action="store_true", help="add every property as a column")
    add("--sql", metavar="CLAUSE", help="only resources matching this clause on the resources columns")
    add("-s", "--state", action="store_true", help="the state of each resource, by host")
    add("-S", "--Summary", dest="summary", action="store_true", help="per host: state, jobs, free resources")
    add("-l", "--list", action="store_true", help="only the list of hosts")
    add("-e", "--events", nargs="?", const="", metavar="DATE",
        help='the events of the hosts since DATE "YYYY-MM-DD hh:mm:ss" (default: the latest 30)')
    add("-J", "--json", action="store_true", help="JSON output")
    add("-Y", "--yaml", action="store_true", help="YAML output")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    modes = [args.state, args.list, args.summary, args.events is not None]
    if sum(bool(mode) for mode in modes) > 1:
        raise UsageError("-s, -l, -S and -e cannot be used together")
    if args.json and args.yaml:
        raise UsageError("-J and -Y cannot be used together")
    if args.summary and (args.json or args.yaml):
        raise UsageError("-S has no JSON or YAML form")
    if args.events:
        args.since = since(args.events)
    return args


def since(text: str) -> float:
    """``-e DATE`` as an epoch."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise UsageError(f'bad date {text!r} for -e: expected "YYYY-MM-DD hh:mm:ss"') from None


def render(args: argparse.Namespace, rows: list[dict[str, Any]], jobs: dict[int, list[int]]) -> str:
    from oar_celery.client import oar3_format as fmt

    structured = args.json or args.yaml
    if args.list:
        hosts = list(fmt.by_host(rows))
        return fmt.dump(hosts, yaml=args.yaml) if structured else "\n".join(hosts)
    if args.state:
        by_id = bool(args.resource_ids or args.sql)
        if structured:
            data: Any = ([{str(r["resource_id"]): r["state"]} for r in rows] if by_id
                         else fmt.host_states_data(rows))
            return fmt.dump(data, yaml=args.yaml)
        return fmt.resource_states(rows) if by_id else fmt.host_states(rows)
    if args.summary:
        return fmt.summary(rows, jobs, time.time())
    if structured:
        return fmt.dump(fmt.resources_data(rows), yaml=args.yaml)
    return fmt.resources_table(rows, args.properties, show_all=args.show_all_properties)


def unknown(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """Error lines for hosts and resource ids that matched nothing."""
    hosts = {r["network_address"] for r in rows}
    ids = {r["resource_id"] for r in rows}
    lines = [f"unknown host {host!r}" for host in dict.fromkeys(args.hosts) if host not in hosts]
    lines += [f"unknown resource {rid}" for rid in dict.fromkeys(args.resource_ids or ()) if rid not in ids]
    return lines


def row_kinds(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Column kinds for ``--sql``, from the values read (a column of NULLs is text)."""
    kinds: dict[str, str] = {}
    for row in rows:
        for name, value in row.items():
            if value is None:
                kinds.setdefault(name, "str")
            elif kinds.get(name) in (None, "str") or kinds[name] == "int" and isinstance(value, float):
                kinds[name] = "int" if isinstance(value, int) else "float" if isinstance(value, float) else "str"
    return kinds


def _events(args: argparse.Namespace) -> int:
    from oar_celery.client import api
    from oar_celery.client import oar3_format as fmt

    hosts = args.hosts or None
    if hosts:
        known = set(api.known_hosts())
        missing = [host for host in hosts if host not in known]
        for host in missing:
            error_line(COMMAND, f"unknown host {host!r}")
        if missing:
            return EXIT_FAILURE
    events = api.host_events(hosts, since=getattr(args, "since", None))
    structured = args.json or args.yaml
    text = fmt.dump(fmt.host_events_data(events), yaml=args.yaml) if structured else None
    emit(text or fmt.host_events_table(escaped(events)))
    return 0


def _body(argv: list[str]) -> int:
    args = parse(argv)
    if args.events is not None:
        return _events(args)
    from oar_celery.client import api

    with_jobs = args.summary or not (args.state or args.list)
    rows, jobs = api.resources(hosts=args.hosts or None, resource_ids=args.resource_ids, with_jobs=with_jobs)
    if args.sql is not None:
        from oar_celery.client.sql_filter import select_rows

        rows = select_rows(rows, args.sql, row_kinds(rows), lambda row: row)
        if not rows:
            error_line(COMMAND, f"There are no resource(s) for this SQL WHERE clause ({args.sql})")
            return EXIT_NO_MATCH
    emit(render(args, rows if args.json or args.yaml else escaped(rows), jobs))
    errors = unknown(args, rows) if args.sql is None else []
    for line in errors:
        error_line(COMMAND, line)
    return EXIT_FAILURE if errors else 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
