"""oarnodesetting: add resources, change their state or properties, as OAR's oarnodesetting does.

``-h`` is a host name here as in OAR, so help is ``--help`` only. The head
applies the change (NodeChangeState) and answers with one line per change.
"""

from __future__ import annotations

import argparse
import re
import sys

from oar_celery.cli.common import Parser, UsageError, add_version, parser, positive_int, run

COMMAND = "oarnodesetting"
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
    return p


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
    if args.add and not args.hosts:
        raise UsageError("-a needs -h HOST")
    if args.add and args.resource_ids:
        raise UsageError("-a and -r cannot be used together")
    if not args.add and not args.hosts and not args.resource_ids:
        raise UsageError("say which resources: -h HOST or -r ID")
    args.state = parse_state(args.state) if args.state is not None else None
    args.properties = dict(parse_property(text) for text in args.properties)
    if not (args.add or args.state or args.properties or args.maintenance or args.drain):
        raise UsageError("nothing to do: give -a, -s, -p, -m or -d")
    return args


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

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
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
