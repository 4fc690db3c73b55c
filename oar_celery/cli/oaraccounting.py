"""oaraccounting: feed the accounting table, as OAR3's oaraccounting (admin only).

The head accounts for each job as it ends; this command catches up on jobs
not accounted yet (ended before, or after ``--reinitialize``), empties the
table, or drops the windows older than a number of seconds ago.
"""

from __future__ import annotations

import sys

from oar_celery.cli.common import Parser, UsageError, escape_controls, parser, run

COMMAND = "oaraccounting"


def build_parser() -> Parser:
    p = parser(COMMAND, "Feed accounting table to make usage statistics.")
    p.add_argument("--reinitialize", action="store_true", help="delete everything in the accounting table")
    p.add_argument("--delete-before", type=int, metavar="SECONDS",
                   help="delete every record older than this number of seconds ago")
    return p


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.reinitialize and args.delete_before is not None:
        raise UsageError("--reinitialize and --delete-before cannot be used together")
    if args.delete_before is not None and args.delete_before < 0:
        raise UsageError("--delete-before takes a number of seconds >= 0")
    from oar_celery.client import api

    for line in api.accounting(reinitialize=args.reinitialize, delete_before=args.delete_before):
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
