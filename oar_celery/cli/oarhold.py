"""oarhold: hold waiting jobs (or suspend running ones with ``-r``), as OAR's oarhold does."""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import Parser, job_selection_parser, parse_job_selection, print_outcome, run, selected_jobs

COMMAND = "oarhold"


def build_parser() -> Parser:
    p = job_selection_parser(COMMAND, "Hold OAR jobs: a waiting job stays out of scheduling until oarresume.")
    p.add_argument("-r", "--running", action="store_true", help="suspend running jobs too")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    return parse_job_selection(build_parser(), argv)


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    outcome = api.hold(selected_jobs(args), running=args.running)
    return print_outcome(outcome, outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
