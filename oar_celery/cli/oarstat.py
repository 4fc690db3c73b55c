"""oarstat: show jobs, with OAR3's options and output formats.

Reads the database directly, with a fixed number of queries whatever the
number of jobs; the default table with one statement through the bare
database driver (:mod:`oar_celery.client.bare_reads`), so that the command
a user types most does not pay for importing SQLAlchemy. Anyone may look at any job, as in OAR; only changes are
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
    add_version,
    emit,
    error_line,
    escaped,
    parser,
    positive_int,
    run,
)

COMMAND = "oarstat"
_DATE_TIME = r"(\d{4}-\d{1,2}-\d{1,2}\s+\d{1,2}:\d{1,2}:\d{1,2})"
_GANTT = re.compile(rf"^\s*{_DATE_TIME}\s*,\s*{_DATE_TIME}\s*$")


def build_parser() -> Parser:
    p = parser(COMMAND, "Show OAR jobs (by default the jobs not yet finished).")
    add_version(p)
    add = p.add_argument
    add("-j", "--job", dest="job_ids", action="append", type=positive_int, metavar="ID",
        help="this job (repeatable)")
    add("-f", "--full", action="store_true", help="every detail of each job")
    add("-s", "--state", action="store_true", help="only the state of each job")
    add("-u", "--user", nargs="?", const="", metavar="USER", help="jobs of USER (default: you)")
    add("-r", "--show-resources", action="store_true", help="add the hosts of each job")
    add("-a", "--array", dest="array_id", type=positive_int, metavar="ID", help="the jobs of this array")
    add("-c", "--compact", action="store_true", help="one line per array job")
    add("-g", "--gantt", metavar='"START, STOP"', help='jobs between two dates "YYYY-MM-DD hh:mm:ss, ..."')
    add("-e", "--events", action="store_true", help="the events of the jobs given with -j or -a")
    add("-p", "--properties", action="store_true", help="the properties of the resources of the jobs")
    add("-S", "--sql", metavar="CLAUSE", help="only jobs matching this clause on the jobs columns")
    add("-J", "--json", action="store_true", help="JSON output")
    add("-Y", "--yaml", action="store_true", help="YAML output")
    add("--accounting", metavar='"YYYY-MM-DD, YYYY-MM-DD"', help="usage between two dates (with -u: of one user)")
    return p


def check_options(args: argparse.Namespace) -> None:
    if args.job_ids and args.array_id:
        raise UsageError("Conflicting Job IDs and Array IDs (--array and -j cannot be used together)")
    if args.json and args.yaml:
        raise UsageError("-J and -Y cannot be used together")
    if (args.events or args.properties) and not (args.job_ids or args.array_id):
        raise UsageError("No job ids specified (-e and -p need -j ID or -a ID)")
    if sum(bool(x) for x in (args.state, args.full, args.events, args.properties)) > 1:
        raise UsageError("-s, -f, -e and -p cannot be used together")


def gantt_window(text: str) -> tuple[float, float]:
    """``-g "YYYY-MM-DD hh:mm:ss, YYYY-MM-DD hh:mm:ss"`` as two epochs, start before stop."""
    match = _GANTT.match(text)
    if not match:
        raise UsageError(f'bad -g {text!r}: expected "YYYY-MM-DD hh:mm:ss, YYYY-MM-DD hh:mm:ss"')
    try:
        start, stop = (time.mktime(time.strptime(m, "%Y-%m-%d %H:%M:%S")) for m in match.groups())
    except ValueError as exc:
        raise UsageError(f"bad -g {text!r}: {exc}") from None
    if stop < start:
        raise UsageError(f"bad -g {text!r}: the second date is before the first")
    return start, stop


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """Which jobs to read: -j, -a and -g show them whatever their state, else the current ones."""
    from oar_celery.config import current_user

    user = None
    if args.user is not None:
        user = args.user or current_user()
    explicit = bool(args.job_ids) or args.array_id is not None or bool(args.gantt)
    return {"job_ids": args.job_ids, "user": user, "array_id": args.array_id, "current_only": not explicit}


def in_window(job: dict[str, Any], start: float, stop: float) -> bool:
    """OAR3's ``-g``: the job ran, is predicted to run, or was submitted within the window."""
    begin = job.get("start_time") or job.get("scheduled_start") or job.get("submission_time") or 0
    end = job.get("stop_time") or (begin + (job.get("walltime") or 0)) if begin else 0
    if not job.get("stop_time") and job.get("state") in ("Running", "Suspended", "Resuming", "Launching"):
        end = max(end, time.time())
    return begin < stop and end >= start


def table_only(args: argparse.Namespace) -> bool:
    """Whether the output is the default table (``-c`` included), which needs a few ``jobs`` columns only."""
    details = (args.full, args.state, args.json, args.yaml, args.show_resources, args.gantt, args.events,
               args.properties, args.sql is not None)
    return not any(details)


def read_jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The selected jobs: the default table's through the bare driver (no SQLAlchemy to import), else every column."""
    if table_only(args):
        from oar_celery.client.bare_reads import table_jobs

        jobs = table_jobs(**selection(args))
        if jobs is not None:
            return jobs
    from oar_celery.client import api

    full = args.full or args.json or args.yaml or args.show_resources or bool(args.gantt)
    return api.jobs(**selection(args), full=full)


def filtered(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if args.gantt:
        start, stop = gantt_window(args.gantt)
        jobs = [job for job in jobs if in_window(job, start, stop)]
    if args.sql is not None:
        from oar_celery.client.queries import job_sql_row
        from oar_celery.client.sql_filter import kinds, select_rows
        from oar_celery.db.models import Job

        jobs = select_rows(jobs, args.sql, kinds(Job.__table__), job_sql_row)
    return jobs


def render(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> str:
    from oar_celery.client import oar3_format as fmt

    if args.json or args.yaml:
        data: Any = {str(j["id"]): j["state"] for j in jobs} if args.state else fmt.jobs_data(jobs)
        return fmt.dump(data, yaml=args.yaml)
    if args.state:
        return fmt.job_states(jobs)
    if args.full:
        return fmt.jobs_full(jobs)
    shown = fmt.compact(jobs) if args.compact else jobs
    return fmt.jobs_table(shown, time.time(), resources=args.show_resources)


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
    from oar_celery.client import accounting_format as fmt
    from oar_celery.client import api
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
    if args.gantt:
        gantt_window(args.gantt)
    if args.accounting is not None:
        return _accounting(args)
    jobs = filtered(args, read_jobs(args))
    if not (args.json or args.yaml):
        jobs = escaped(jobs)  # a job's name or command may hold control characters: never sent to the terminal
    if args.events:
        _print_events(args, jobs)
    elif args.properties:
        _print_properties(args, jobs)
    else:
        emit(render(args, jobs))
    missing = missing_jobs(args.job_ids, jobs) if args.sql is None else []
    for job_id in missing:
        error_line(COMMAND, f"job {job_id} does not exist")
    return EXIT_FAILURE if missing else 0


def _print_events(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> None:
    from oar_celery.client import api
    from oar_celery.client import oar3_format as fmt

    by_job = api.job_events([job["id"] for job in jobs])
    events = [{**event, "job_id": job_id} for job_id in sorted(by_job) for event in by_job[job_id]]
    events.sort(key=lambda e: (e.get("date") or 0, e.get("event_id") or 0))
    if args.json or args.yaml:
        emit(fmt.dump(fmt.events_data(events), yaml=args.yaml))
    else:
        emit(fmt.events_table(escaped(events)))


def _print_properties(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> None:
    from oar_celery.client import api
    from oar_celery.client import oar3_format as fmt

    by_job = api.job_resources([job["id"] for job in jobs])
    if args.json or args.yaml:
        data = {str(job_id): [fmt.user_properties(r) for r in rows] for job_id, rows in by_job.items()}
        emit(fmt.dump(data, yaml=args.yaml))
        return
    emit("\n".join(fmt.properties_line(escaped(r)) for job_id in sorted(by_job) for r in by_job[job_id]))


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
