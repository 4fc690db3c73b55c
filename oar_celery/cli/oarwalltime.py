"""oarwalltime: ask for more (or less) walltime for a running job, or see the request, as OAR3's oarwalltime.

``oarwalltime JOBID`` shows the job's walltime, what may still be granted,
what was granted and what is pending; ``oarwalltime JOBID [+|-]DURATION``
records a request, which the scheduler grants as soon as the Gantt allows.
"""

from __future__ import annotations

import re
import sys

from oar_celery.cli.common import Parser, UsageError, escape_controls, parser, positive_int, run

COMMAND = "oarwalltime"
_DURATION = re.compile(r"^[-+]?\d+(?::\d+(?::\d+)?)?$")


def build_parser() -> Parser:
    p = parser(COMMAND, "Manage walltime change requests for a job.")
    p.add_argument("job_id", type=positive_int, metavar="JOBID")
    p.add_argument("new_walltime", nargs="?", metavar="[+|-]DURATION", help="e.g. +1:30, -0:10, or 2:00:00")
    p.add_argument("--delay-next-jobs", action="store_true", help="the extra time may delay the next jobs")
    return p


def _body(argv: list[str]) -> int:
    args = build_parser().parse_intermixed_args(argv)  # options may come between JOBID and DURATION
    if args.new_walltime is None and args.delay_next_jobs:
        raise UsageError("new walltime argument is missing")
    if args.new_walltime is not None and not _DURATION.match(args.new_walltime):
        raise UsageError(f"new walltime is malformatted: {args.new_walltime}")
    from oar_celery.client import api

    for line in api.walltime(args.job_id, args.new_walltime, delay_next_jobs=args.delay_next_jobs):
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
