"""oarresume: release held jobs and resume suspended ones, as OAR's oarresume does."""

from __future__ import annotations

import argparse
import sys

from oar_celery.cli.common import Parser, job_selection_parser, parse_job_selection, print_outcome, run, selected_jobs

COMMAND = "oarresume"


def build_parser() -> Parser:
    return job_selection_parser(COMMAND, "Resume OAR jobs that were held (oarhold) or suspended.")


def parse(argv: list[str]) -> argparse.Namespace:
    return parse_job_selection(build_parser(), argv)


def _body(argv: list[str]) -> int:
    args = parse(argv)
    from oar_celery.client import api

    outcome = api.resume(selected_jobs(args))
    return print_outcome(outcome, outcome.failed)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
