"""oardel: delete jobs, signal them, or (admins) change them, with OAR3's options and exit codes.

The head checks that the jobs are the user's and decides what deleting means
in each state (Leon); this command only sends the request, prints the
head's line for each job, and turns the failures into OAR3's exit status.
"""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    error_line,
    job_selection_parser,
    parse_job_selection,
    print_outcome,
    run,
    selected_jobs,
    signal_number,
)
from oar_celery.client.errors import ClientError

COMMAND = "oardel"
#: OAR3's oardel exit statuses, by what the head's line says (``CommandReturns``: 15 when they differ).
EXIT_BY_WORDS = (
    ("does not exist", 7),
    ("already finished", 6),
    ("You must be oar or root", 8),
    ("not in the Running state", 9),
    ("not in the Finishing state", 10),
    ("belongs to", 1),
)
EXIT_NO_JOB = 4
EXIT_SEVERAL = 15


def build_parser() -> Parser:
    p = job_selection_parser(COMMAND, "Delete OAR jobs, or send them a signal.")
    add = p.add_argument
    add("-c", "--checkpoint", action="store_true", help="send the checkpoint signal instead of deleting")
    add("-s", "--signal", metavar="SIGNAL", help="send this signal (number or name) instead of deleting")
    add("-b", "--besteffort", action="store_true",
        help="make running jobs besteffort, or remove the type if they have it (admins)")
    add("--force-terminate-finishing-job", action="store_true",
        help="jobs stuck in Finishing become Terminated (admins, last resort)")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    args = parse_job_selection(build_parser(), argv)
    actions = [args.checkpoint, bool(args.signal), args.besteffort, args.force_terminate_finishing_job]
    if sum(bool(action) for action in actions) > 1:
        raise UsageError("-c, -s, -b and --force-terminate-finishing-job cannot be used together")
    args.signal = signal_number(args.signal) if args.signal else None
    return args


def exit_status(lines: dict[int, str], failed: set[int]) -> int:
    """OAR3's status: the code of the failure, 15 if the failures differ, 0 if none."""
    codes = {next((code for words, code in EXIT_BY_WORDS if words in lines[j]), EXIT_FAILURE) for j in failed}
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else EXIT_SEVERAL


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    try:
        job_ids = selected_jobs(args)
    except ClientError as error:
        if args.sql is None:
            raise
        error_line(COMMAND, error)
        return EXIT_NO_JOB
    if args.besteffort:
        outcome = api.toggle_besteffort(job_ids)
    elif args.force_terminate_finishing_job:
        outcome = api.force_terminate(job_ids)
    else:
        outcome = api.delete(job_ids, signal=args.signal, checkpoint=args.checkpoint)
    print_outcome(outcome, outcome.failed)
    return exit_status(dict(outcome), outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
