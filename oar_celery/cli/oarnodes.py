"""oarnodes: show resources, their states and the events of hosts, as OAR's oarnodes does."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    add_version,
    emit,
    error_line,
    parser,
    positive_int,
    run,
)

COMMAND = "oarnodes"


def build_parser() -> Parser:
    p = parser(COMMAND, "Show OAR resources (all, or those of the given hosts).")
    add_version(p)
    add = p.add_argument
    add("hosts", nargs="*", metavar="HOST", help="hosts to show (default: all)")
    add(
        "-r",
        "--resource",
        dest="resource_ids",
        action="append",
        type=positive_int,
        metavar="ID",
        help="this resource (repeatable)",
    )
    add("-s", "--state", action="store_true", help="only the state of each resource, by host")
    add("-l", "--list", action="store_true", help="only the list of hosts")
    add("-S", "--summary", action="store_true", help="how many resources and hosts are in each state")
    add(
        "-e",
        "--events",
        nargs="?",
        const="",
        metavar="HOST",
        help="the latest events of HOST (default: the hosts given, or all)",
    )
    add("-J", "--json", action="store_true", help="JSON output")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    modes = [args.state, args.list, args.summary, args.events is not None]
    if sum(bool(mode) for mode in modes) > 1:
        raise UsageError("-s, -l, -S and -e cannot be used together")
    if args.json and (args.summary or args.events is not None):
        raise UsageError("-J goes with the table, -s, -l and -r only")
    return args


def render(args: argparse.Namespace, rows: list[dict[str, Any]], jobs: dict[int, list[int]]) -> str:
    from oar_celery.client import format as fmt

    if args.list:
        hosts = list(dict.fromkeys(str(r["network_address"]) for r in rows))
        return json.dumps(hosts, indent=4) if args.json else fmt.hosts_list(rows)
    if args.state:
        if args.json:
            return json.dumps({str(r["resource_id"]): r["state"] for r in rows}, indent=4, sort_keys=True)
        return fmt.resources_states(rows)
    if args.summary:
        return fmt.resources_summary(rows)
    return fmt.resources_json(rows, jobs) if args.json else fmt.resources_table(rows, jobs)


def unknown(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """Error lines for hosts and resource ids that matched nothing."""
    hosts = {r["network_address"] for r in rows}
    ids = {r["resource_id"] for r in rows}
    lines = [f"unknown host {host!r}" for host in dict.fromkeys(args.hosts) if host not in hosts]
    lines += [f"unknown resource {rid}" for rid in dict.fromkeys(args.resource_ids or ()) if rid not in ids]
    return lines


def _events(args: argparse.Namespace) -> int:
    from oar_celery.client import api
    from oar_celery.client import format as fmt

    hosts = [args.events] if args.events else (args.hosts or None)
    if hosts:
        known = set(api.known_hosts())
        missing = [host for host in hosts if host not in known]
        for host in missing:
            error_line(COMMAND, f"unknown host {host!r}")
        if missing:
            return EXIT_FAILURE
    emit(fmt.host_events(api.host_events(hosts)))
    return 0


def _body(argv: list[str]) -> int:
    args = parse(argv)
    if args.events is not None:
        return _events(args)
    from oar_celery.client import api

    with_jobs = not (args.state or args.list or args.summary)
    rows, jobs = api.resources(hosts=args.hosts or None, resource_ids=args.resource_ids, with_jobs=with_jobs)
    emit(render(args, rows, jobs))
    errors = unknown(args, rows)
    for line in errors:
        error_line(COMMAND, line)
    return EXIT_FAILURE if errors else 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
