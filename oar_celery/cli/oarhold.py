"""oarhold: hold waiting jobs (or suspend running ones with ``-r``), as OAR's oarhold does."""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import Parser, UsageError, array_jobs, parser, positive_int, print_outcome, run

COMMAND = "oarhold"


def build_parser() -> Parser:
    p = parser(COMMAND, "Hold OAR jobs: a waiting job stays out of scheduling until oarresume.")
    add = p.add_argument
    add("job_ids", nargs="*", type=positive_int, metavar="ID", help="job ids")
    add("-r", "--running", action="store_true", help="suspend running jobs too")
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
    outcome = api.hold(ids, running=args.running)
    return print_outcome(outcome, outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
