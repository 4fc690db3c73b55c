"""oarresume: release held jobs and resume suspended ones, as OAR's oarresume does."""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import Parser, UsageError, array_jobs, parser, positive_int, print_outcome, run

COMMAND = "oarresume"


def build_parser() -> Parser:
    p = parser(COMMAND, "Resume OAR jobs that were held (oarhold) or suspended.")
    add = p.add_argument
    add("job_ids", nargs="*", type=positive_int, metavar="ID", help="job ids")
    add("--array", dest="array_id", type=positive_int, metavar="ID", help="every unfinished job of this array")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not args.job_ids and args.array_id is None:
        raise UsageError("no job id given")
    return args


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    ids = list(dict.fromkeys([*args.job_ids, *(array_jobs(args.array_id) if args.array_id else [])]))
    outcome = api.resume(ids)
    return print_outcome(outcome, outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
