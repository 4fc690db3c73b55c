"""oarsub: submit a batch job, as OAR's oarsub does.

What only this machine sees is checked here: the directory, the files named,
the options' combinations, the bounds on size and control characters; a
``-p`` filter and a ``--notify`` method with the head's own parsers, when
given. The resource request (``-l``) is the head's to judge, with the
admission rules, the queues and the resources that exist: the scheduler's
parser would cost every submission about a fifth of this command's start,
and the head's refusal is the same one line. OAR3 spells hold
``--hold`` only: ``-h`` is help, so that a habit never submits a held job
by surprise.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from typing import Any

from oar_celery.cli.common import (
    EXIT_FAILURE,
    Parser,
    UsageError,
    add_version,
    error_line,
    parser,
    positive_int,
    run,
    signal_number,
)

COMMAND = "oarsub"
_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:\s+(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?)?\s*$")


def build_parser() -> Parser:
    p = parser(COMMAND, "Submit a batch job to OAR.")
    add = p.add_argument
    add(
        "-l",
        "--resource",
        action="append",
        default=[],
        metavar="RES",
        help="resources, e.g. /nodes=2/core=4,walltime=1:00:00 (one per moldable)",
    )
    add("-n", "--name", help="job name")
    add("-d", "--directory", help="working directory (default: the current one)")
    add("-O", "--stdout", help="stdout file (%%jobid%% is replaced)")
    add("-E", "--stderr", help="stderr file (%%jobid%% is replaced)")
    add("-q", "--queue", help="queue")
    add("--hold", action="store_true", help="submit the job in the Hold state")
    add("-p", "--property", dest="properties", help="property filter, e.g. \"mem > 64 AND switch = 'sw1'\"")
    add("-t", "--type", dest="types", action="append", default=[], help="job type (repeatable)")
    add(
        "-a",
        "--after",
        "--anterior",
        dest="dependencies",
        action="append",
        type=positive_int,
        default=[],
        metavar="JOBID",
        help="run after this job (repeatable)",
    )
    add("-r", "--reservation", metavar="DATE", help='advance reservation "YYYY-MM-DD HH:MM:SS"')
    add("--notify", help='"[TAGS]mail:address" or "[TAGS]exec:/path/script"')
    add("--checkpoint", type=int, metavar="S", help="send the checkpoint signal S seconds before the walltime")
    add("--signal", metavar="N", help="checkpoint signal (number or name, default 12)")
    add("--array", type=positive_int, metavar="N", help="submit an array of N jobs")
    add("--array-param-file", metavar="FILE", help="one array job per line, the line appended to the command")
    add("--project", help="project")
    add_version(p)
    add("-S", "--scanscript", action="store_true", help="read #OAR directives in the job script (the command)")
    add("-I", "--interactive", action="store_true", help="interactive mode: a shell on the job's first node")
    add("-C", "--connect", metavar="JOBID", type=positive_int, help="a shell in a running job, on its first node")
    add("-k", "--use-job-key", action="store_true", help="use a job key (oarsh from outside the job: see -e)")
    add("-i", "--import-job-key-from-file", metavar="FILE",
        help="the job key to use (job keys are made by the cluster: the file is only checked)")
    add("-e", "--export-job-key-to-file", metavar="FILE",
        help="export the job key to FILE (%%jobid%% is replaced), for oarsh -i or OAR_JOB_KEY_FILE")
    add("command", nargs="*", help="the command (quote it with its arguments)")
    return p


# ------------------------------------------------------------------------ validation


def command_text(words: list[str]) -> str:
    """The job's command: one quoted argument as is, several joined shell-safely."""
    if len(words) == 1:
        return words[0].strip()
    return shlex.join(words).strip() if words else ""


def check_properties(text: str) -> None:
    """Check the syntax of a ``-p`` filter (column names are checked by the head)."""
    from oar_celery.scheduler.errors import RequestError
    from oar_celery.scheduler.filters import compile_filter

    if not text.strip():
        raise RequestError("empty property filter (-p)")
    compile_filter(text, None)


def check_notify(text: str) -> None:
    """Check a ``--notify`` method the way the head will (tags, method, address)."""
    from oar_celery.protocol.notify_method import parse_notify

    parse_notify(text)


def reservation_date(text: str) -> str:
    """OAR's ``-r`` date, normalized to ``YYYY-MM-DD HH:MM:SS``."""
    match = _DATE.match(text)
    if not match:
        raise UsageError(f'bad reservation date {text!r}: expected "YYYY-MM-DD HH:MM:SS"')
    import datetime

    numbers = [int(part) if part else 0 for part in match.groups()]
    try:
        moment = datetime.datetime(*numbers)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UsageError(f"bad reservation date {text!r}: {exc}") from None
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def working_directory(text: str | None) -> str:
    """``-d`` made absolute against the current directory; it must exist."""
    path = os.path.join(os.getcwd(), os.path.expanduser(text or "."))
    if not os.path.isdir(path):
        raise UsageError(f"directory {path!r} does not exist")
    return os.path.normpath(path)


def array_params(path: str) -> list[str]:
    """The parameter lines of ``--array-param-file`` (blank lines and ``#`` comments skipped)."""
    try:
        with open(path) as params_file:
            lines = params_file.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the array parameter file {path!r} ({exc.strerror or exc})") from None
    params = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not params:
        raise UsageError(f"the array parameter file {path!r} has no parameter line")
    return params


def with_script_directives(args: argparse.Namespace) -> tuple[argparse.Namespace, list[str]]:
    """``-S``: the options of the script's ``#OAR`` lines where the command line set none; their words."""
    if not args.scanscript:
        return args, []
    from oar_celery.client import jobscript

    command = command_text(args.command)
    try:
        path = jobscript.script_path(command)
        directives = jobscript.scan(jobscript.read_script(path), name=command.split()[0])
    except jobscript.ScriptError as exc:
        raise UsageError(str(exc)) from None
    return argparse.Namespace(**jobscript.merge(vars(args), directives)), directives.words


def check_limits(args: argparse.Namespace, command: str) -> None:
    """Hostile input first: size, walltime, filter depth, control characters (the head checks again)."""
    from oar_celery.config import settings
    from oar_celery.protocol.limits import limit_problem, limits_of

    fields = {"command": command, "resources": list(args.resource), "properties": args.properties,
              "name": args.name, "project": args.project, "queue": args.queue, "stdout": args.stdout,
              "stderr": args.stderr, "notify": args.notify, "types": list(args.types), "directory": args.directory,
              "array": args.array}
    problem = limit_problem(fields, limits_of(settings()))
    if problem:
        raise UsageError(problem)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """Check the parsed options and turn them into the head's request dict."""
    args, script_words = with_script_directives(args)
    command = command_text(args.command)
    check_job_key_options(args)
    if args.interactive and command:
        raise UsageError("an interactive job (-I) takes no command")
    if args.interactive and (args.reservation or args.array or args.array_param_file):
        raise UsageError("-I cannot be used with -r or an array (a reservation without a command holds a shell)")
    if not command and not args.reservation and not args.interactive:
        raise UsageError("a command is required (or -I for an interactive job; a reservation may have none)")
    check_limits(args, command)
    if args.properties is not None:
        check_properties(args.properties)
    if any(not t.strip() for t in args.types):
        raise UsageError("empty job type (-t)")
    if args.notify is not None:
        check_notify(args.notify)
    if args.checkpoint is not None and args.checkpoint < 0:
        raise UsageError("--checkpoint must be a number of seconds >= 0")
    params = array_params(args.array_param_file) if args.array_param_file else None
    if params and args.array and args.array != len(params):
        raise UsageError(f"--array {args.array} but the parameter file has {len(params)} lines")
    if args.reservation and (args.array or params):
        raise UsageError("an array job cannot be a reservation")
    return {
        "command": command,
        "resources": list(args.resource),
        "name": args.name,
        "directory": working_directory(args.directory),
        "stdout": args.stdout,
        "stderr": args.stderr,
        "queue": args.queue,
        "hold": bool(args.hold),
        "types": [t.strip() for t in args.types],
        "properties": args.properties,
        "dependencies": list(args.dependencies),
        "reservation": reservation_date(args.reservation) if args.reservation else None,
        "notify": args.notify,
        "checkpoint": args.checkpoint or 0,
        "signal": signal_number(args.signal) if args.signal else None,
        "array": len(params) if params else args.array,
        "array_params": params,
        "project": args.project,
        "script_words": script_words,
        **({"interactive": True} if args.interactive else {}),
    }


def check_job_key_options(args: argparse.Namespace) -> None:
    """OAR3's rule: ``-i`` and ``-e`` need ``-k`` (implied by ``OAR_JOB_KEY_FILE``, as OAR3 does)."""
    wants_key = args.import_job_key_from_file or args.export_job_key_to_file
    if wants_key and not (args.use_job_key or os.environ.get("OAR_JOB_KEY_FILE")):
        raise UsageError("You must set the --use-job-key (or -k) option in order to use other job key "
                             "related options.")
    if args.import_job_key_from_file and not os.path.isfile(args.import_job_key_from_file):
        raise UsageError(f"cannot read the job key file {args.import_job_key_from_file!r}")


# ----------------------------------------------------------------------------- output


def job_id_lines(job_ids: list[int], *, array: bool) -> list[str]:
    """``OAR_JOB_ID=<id>`` per job, then ``OAR_ARRAY_ID=<first id>`` for an array."""
    lines = [f"OAR_JOB_ID={job_id}" for job_id in job_ids]
    if array:
        lines.append(f"OAR_ARRAY_ID={job_ids[0]}")
    return lines


def reservation_lines(answer: dict[str, Any]) -> tuple[list[str], bool]:
    """OAR's verdict lines for a reservation answer, and whether it was granted."""
    if answer.get("status") == "granted":
        lines = ["Reservation valid --> OK"]
        if answer.get("start"):
            import datetime

            start = datetime.datetime.fromtimestamp(float(answer["start"]))
            lines.append(f"Reservation start: {start:%Y-%m-%d %H:%M:%S}")
        return lines, True
    return ["Reservation not valid --> KO"], False


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.connect:
        if args.command or args.interactive:
            raise UsageError("-C JOBID takes no command and no -I")
        from oar_celery.cli.interactive import connect

        return connect(args.connect)
    request = build_request(args)
    interactive = bool(request.get("interactive"))
    request["initial_request"] = shlex.join([COMMAND, *argv, *request.pop("script_words")])
    from oar_celery.client import api
    from oar_celery.config import current_user

    request["user"] = current_user()
    job_ids, reply = api.submit_for_reply(request)
    print("\n".join(job_id_lines(job_ids, array=bool(request["array"]))), flush=True)
    if interactive:
        from oar_celery.cli.interactive import interactive as interactive_shell

        return interactive_shell(job_ids[0], args.export_job_key_to_file)
    if args.export_job_key_to_file:
        export_job_key(job_ids[0], args.export_job_key_to_file)
    if not request["reservation"]:
        return 0
    print("Reservation mode: waiting validation...", flush=True)
    answer = api.wait_reservation(job_ids[0], reply)
    lines, granted = reservation_lines(answer)
    print("\n".join(lines), flush=True)
    if not granted:
        error_line(COMMAND, answer.get("message") or "the reservation was refused")
        return EXIT_FAILURE
    return 0


def export_job_key(job_id: int, path: str) -> None:
    """``-k -e FILE`` of a batch job: its key now; ``oarsh`` asks the head for its nodes once it runs."""
    from oar_celery.client import api
    from oar_celery.client.jobshell import write_key_file

    write_key_file(path, api.job_key(job_id)["job_key"])
    print(f"# Info: export job key to file: {path.replace('%jobid%', str(job_id))}", flush=True)


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
