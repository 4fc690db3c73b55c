"""oarqueue: list, create, change, enable, disable or remove queues, as OAR3's oarqueue (admin only).

The head checks that the user is root or the admin user and applies the
change in one transaction; this command only parses and prints.
"""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import Parser, UsageError, escape_controls, parser, run

COMMAND = "oarqueue"


def build_parser() -> Parser:
    p = parser(COMMAND, "List, create or change OAR's scheduler queues.")
    add = p.add_argument
    add("-l", "--list", action="store_true", help="list all queues (default if no other option)")
    add("-e", "--enable", metavar="QUEUE", help="enable a queue, given its name")
    add("-d", "--disable", metavar="QUEUE", help="disable a queue, given its name")
    add("-E", "--enable-all", action="store_true", help="enable all queues")
    add("-D", "--disable-all", action="store_true", help="disable all queues")
    add("--add", metavar="NAME,PRIORITY,POLICY", help='add a new queue (eg: "q1,3,fifo" or "q2,4,fairsharing")')
    add("--change", metavar="NAME,PRIORITY,POLICY", help="change the priority/policy of a queue, given its name")
    add("--remove", metavar="QUEUE", help="remove a queue, given its name")
    return p


def split_spec(text: str, option: str) -> tuple[str, int | None, str | None]:
    """``NAME,PRIORITY,POLICY`` (priority and policy may be empty with --change)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not parts[0]:
        raise UsageError(f"{option} takes NAME,PRIORITY,POLICY, not {text!r}")
    name, priority, policy = parts
    try:
        number = int(priority) if priority else None
    except ValueError:
        raise UsageError(f"{option}: the priority must be an integer, not {priority!r}") from None
    return name, number, policy or None


def request(args: argparse.Namespace) -> tuple[str, str | None, int | None, str | None]:
    """The one action the command line asks for: (action, name, priority, policy)."""
    chosen = [
        (flag, value) for flag, value in (
            ("enable", args.enable), ("disable", args.disable), ("enable_all", args.enable_all),
            ("disable_all", args.disable_all), ("add", args.add), ("change", args.change), ("remove", args.remove),
        ) if value
    ]
    if len(chosen) > 1:
        raise UsageError("give one action at a time")
    if not chosen:
        return "list", None, None, None
    action, value = chosen[0]
    if action in ("add", "change"):
        name, priority, policy = split_spec(str(value), "--" + action)
        if action == "add" and priority is None:
            raise UsageError("--add needs a priority: NAME,PRIORITY,POLICY")
        return action, name, priority, policy
    return action, value if isinstance(value, str) else None, None, None


def _body(argv: list[str]) -> int:
    action, name, priority, policy = request(build_parser().parse_args(argv))
    from oar_celery.client import api

    for line in api.queue(action, name, priority, policy):
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
