"""oarstat: show jobs, as OAR 2.5's oarstat does.

Reads the database directly, with a fixed number of queries whatever the
number of jobs. Anyone may look at any job, as in OAR; only changes are
restricted to the owner, by the head.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    add_version,
    emit,
    error_line,
    parser,
    positive_int,
    run,
)

COMMAND = "oarstat"


def build_parser() -> Parser:
    p = parser(COMMAND, "Show OAR jobs (by default the jobs not yet finished).")
    add_version(p)
    add = p.add_argument
    add(
        "-j",
        "--job",
        dest="job_ids",
        action="append",
        type=positive_int,
        metavar="ID",
        help="this job (repeatable)",
    )
    add("-f", "--full", action="store_true", help="every detail of each job")
    add("-s", "--state", action="store_true", help="only the state of each job")
    add("-u", "--user", nargs="?", const="", metavar="USER", help="jobs of USER (default: you)")
    add("-e", "--events", action="store_true", help="the events of the jobs given with -j")
    add("-J", "--json", action="store_true", help="JSON output")
    add("--array", dest="array_id", type=positive_int, metavar="ID", help="the jobs of this array")
    return p


def check_options(args: argparse.Namespace) -> None:
    if args.events and not (args.job_ids or args.array_id):
        raise UsageError("-e needs -j ID or --array ID")
    if args.state and args.full:
        raise UsageError("-s and -f cannot be used together")


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """Which jobs to show: -j and --array show them whatever their state, else the current ones."""
    from oar_celery.config import current_user

    user = None
    if args.user is not None:
        user = args.user or current_user()
    explicit = bool(args.job_ids) or args.array_id is not None
    return {"job_ids": args.job_ids, "user": user, "array_id": args.array_id, "current_only": not explicit}


def render(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> str:
    from oar_celery.client import format as fmt

    if args.json:
        return fmt.jobs_json(jobs)
    if args.state:
        return fmt.job_states(jobs)
    if args.full:
        return fmt.jobs_full(jobs)
    return fmt.jobs_table(jobs)


def missing_jobs(requested: list[int] | None, jobs: list[dict[str, Any]]) -> list[int]:
    found = {job["id"] for job in jobs}
    return [job_id for job_id in dict.fromkeys(requested or ()) if job_id not in found]


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    check_options(args)
    from oar_celery.client import api

    jobs = api.jobs(**selection(args), full=args.full or args.json)
    if args.events:
        _print_events(args, jobs)
    else:
        emit(render(args, jobs))
    missing = missing_jobs(args.job_ids, jobs)
    for job_id in missing:
        error_line(COMMAND, f"job {job_id} does not exist")
    return EXIT_FAILURE if missing else 0


def _print_events(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> None:
    import json

    from oar_celery.client import api
    from oar_celery.client import format as fmt

    events = api.job_events([job["id"] for job in jobs])
    if args.json:
        emit(json.dumps({str(job["id"]): fmt.plain(events.get(job["id"], [])) for job in jobs}, indent=4))
        return
    emit("\n".join(fmt.job_events(job["id"], events.get(job["id"], [])) for job in jobs))


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
