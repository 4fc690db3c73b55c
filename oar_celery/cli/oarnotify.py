"""oarnotify: send Almighty a message tag, or manage queues with OAR 2.5's options (admin only).

``oarnotify [TAG]`` (default ``Term``) as OAR3's; ``-l``, ``-e``/``-d``,
``-E``/``-D``, ``--add_queue`` and ``--remove_queue`` as OAR 2.5's oarnotify,
the same head requests as ``oarqueue``.
"""

from __future__ import annotations

import sys

from oar_celery.cli.common import Parser, UsageError, escape_controls, parser, run
from oar_celery.cli.oarqueue import split_spec

COMMAND = "oarnotify"


def build_parser() -> Parser:
    p = parser(COMMAND, "Send a message tag to OAR's Almighty, or manage queues.")
    add = p.add_argument
    add("tag", nargs="?", default=None, help="Almighty's message (default Term)")
    add("-l", "--list_queues", action="store_true", help="list all queues")
    add("-e", "--enable_queue", metavar="QUEUE", help="enable a queue")
    add("-d", "--disable_queue", metavar="QUEUE", help="disable a queue")
    add("-E", "--enable_all_queues", action="store_true", help="enable all queues")
    add("-D", "--disable_all_queues", action="store_true", help="disable all queues")
    add("--add_queue", metavar="NAME,PRIORITY,POLICY", help="add a queue")
    add("--remove_queue", metavar="QUEUE", help="remove a queue")
    return p


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    actions = [
        (action, value) for action, value in (
            ("list", args.list_queues), ("enable", args.enable_queue), ("disable", args.disable_queue),
            ("enable_all", args.enable_all_queues), ("disable_all", args.disable_all_queues),
            ("add", args.add_queue), ("remove", args.remove_queue),
        ) if value
    ]
    if len(actions) > 1 or (actions and args.tag):
        raise UsageError("give one action at a time")
    from oar_celery.client import api

    if not actions:
        lines = api.notify_tag(args.tag or "Term")
    else:
        action, value = actions[0]
        name, priority, policy = (split_spec(value, "--add_queue") if action == "add"
                                  else (value if isinstance(value, str) else None, None, None))
        lines = api.queue(action, name, priority, policy)
    for line in lines:
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
