"""oarstat: show jobs, as OAR 2.5's oarstat does.

Reads the database directly, with a fixed number of queries whatever the
number of jobs. Anyone may look at any job, as in OAR; only changes are
restricted to the owner, by the head.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    emit,
    error_line,
    parser,
    positive_int,
    run,
)

COMMAND = "oarstat"


def build_parser() -> Parser:
    p = parser(COMMAND, "Show OAR jobs (by default the jobs not yet finished).")
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
    add("--accounting", metavar='"YYYY-MM-DD, YYYY-MM-DD"', help="usage between two dates (with -u: of one user)")
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


ACCOUNTING_DATES = re.compile(r"\s*(\d{4}-\d{1,2}-\d{1,2})\s*,\s*(\d{4}-\d{1,2}-\d{1,2})\s*$")


def accounting_dates(text: str) -> tuple[str, str, float, float]:
    """``"DATE1, DATE2"`` → both dates at midnight, as text and as local epochs (OAR3's reading)."""
    match = ACCOUNTING_DATES.match(text)
    if not match:
        raise UsageError(f'bad syntax for --accounting: {text!r} (expected "YYYY-MM-DD, YYYY-MM-DD")')
    texts = [f"{date} 00:00:00" for date in match.groups()]
    try:
        epochs = [time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S")) for t in texts]
    except ValueError:
        raise UsageError(f"bad date in --accounting: {text!r}") from None
    return texts[0], texts[1], epochs[0], epochs[1]


def _accounting(args: argparse.Namespace) -> int:
    from oar_celery.client import api
    from oar_celery.client import format as fmt
    from oar_celery.config import current_user

    first, second, start, stop = accounting_dates(args.accounting)
    if args.user is None:
        emit(fmt.accounting_table(api.accounting_summary(start, stop)))
        return 0
    user = args.user or current_user()
    summary = api.accounting_summary(start, stop, user)
    if not summary:
        error_line(COMMAND, f"user {user} is not in the accounting table")
        return EXIT_FAILURE
    projects = api.accounting_summary(start, stop, user, by_project=True)
    emit(fmt.accounting_user(user, first, second, summary.get((user, "")), projects, api.last_karmas(user, stop)))
    return 0


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    check_options(args)
    if args.accounting is not None:
        return _accounting(args)
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
