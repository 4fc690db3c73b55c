"""oardel: delete jobs, or signal them (checkpoint), as OAR's oardel does.

The head checks that the jobs are the user's and decides what deleting means
in each state (Leon); this command only sends the request and prints the
head's line for each job.
"""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import (
    Parser,
    UsageError,
    job_selection_parser,
    parse_job_selection,
    print_outcome,
    run,
    selected_jobs,
    signal_number,
)

COMMAND = "oardel"


def build_parser() -> Parser:
    p = job_selection_parser(COMMAND, "Delete OAR jobs, or send them a signal.")
    add = p.add_argument
    add("-c", "--checkpoint", action="store_true", help="send the checkpoint signal instead of deleting")
    add("-s", "--signal", metavar="SIGNAL", help="send this signal (number or name) instead of deleting")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = parse_job_selection(build_parser(), argv)
    if args.checkpoint and args.signal:
        raise UsageError("-c and -s cannot be used together")
    args.signal = signal_number(args.signal) if args.signal else None
    return args


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    outcome = api.delete(selected_jobs(args), signal=args.signal, checkpoint=args.checkpoint)
    return print_outcome(outcome, outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
