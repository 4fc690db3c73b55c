"""What every user command shares: argument errors, failure lines, exit codes.

The commands promise one line on stderr and a meaningful exit status, never a
traceback: 1 when the request failed, 2 when the command line is wrong (as
argparse does), 130 on Ctrl-C. Each completes its own options when the shell
asks (argcomplete, set up by ``eval "$(oar-celery completion)"``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from oar_celery.client.errors import ClientError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A wrong command line, reported as one line with exit status 2.

    ``hint`` adds "see --help": worth it for argparse's own complaints, noise
    for a precise one such as a missing directory.
    """

    def __init__(self, message: str, *, hint: bool = False) -> None:
        super().__init__(message)
        self.hint = hint


def terminal_columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` finds it (``COLUMNS``, stdout, else 80)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class HelpLayout(argparse.HelpFormatter):
    """argparse's own layout, its width found without importing :mod:`shutil`.

    argparse makes one of these per option added, and its default asks
    :mod:`shutil`, whose import brings in the compression modules: a few
    milliseconds of every ``oarsub`` for a help text it rarely prints.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=terminal_columns() - 2)


class Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing the usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpLayout)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=True)


def parser(prog: str, description: str, *, help_option: str = "-h") -> Parser:
    """A parser whose help option is ``help_option`` (oarsub and oarnodesetting use ``-h`` otherwise)."""
    result = Parser(prog=prog, description=description, add_help=False)
    flags = ["--help"] if help_option == "--help" else [help_option, "--help"]
    result.add_argument(*flags, action="help", help="show this help and exit")
    return result


def version_text() -> str:
    """What ``-V``/``--version`` prints, in OAR3's words (``OAR version : X``)."""
    from oar_celery import __version__

    return f"OAR version : {__version__} (oar-celery)"


def add_version(p: argparse.ArgumentParser) -> None:
    """OAR3's ``-V, --version`` on a command: print the version and exit 0."""
    p.add_argument("-V", "--version", action="version", version=version_text(), help="print the OAR version and exit")


#: Control characters (C0, DEL, C1); a user's field may hold any of them (a job name, a property value).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same but newline and tab, which lay a command's output out.
_CONTROL_IN_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def escape_controls(text: str) -> str:
    """A user's text made inert on a terminal: ``\n`` and ``\x1b[2J`` shown as those four and seven characters."""
    return _CONTROL.sub(_escape_one, text)


def escaped(value: Any) -> Any:
    """Rows for a text output, every string in them escaped (:func:`escape_controls`); JSON escapes its own."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {key: escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(escaped(item) for item in value)
    return value


def terminal_safe(text: str) -> str:
    """A block of output with every control character escaped but the newlines and tabs that lay it out."""
    return _CONTROL_IN_LAYOUT.sub(_escape_one, text)


def error_line(command: str, message: object) -> None:
    """Print ``<command>: error: <message>`` on one line of stderr."""
    text = " ".join(escape_controls(str(message)).split()) or "unknown error"
    print(f"{command}: error: {text}", file=sys.stderr)


def positive_int(text: str) -> int:
    """argparse type for ids and counts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def signal_number(text: str) -> int:
    """``--signal`` as a number: ``12``, ``USR2`` or ``SIGUSR2``."""
    if text.isdigit():
        number = int(text)
    else:
        import signal  # only a named --signal needs the table

        name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
        member = signal.Signals.__members__.get(name)
        if member is None:
            raise UsageError(f"unknown signal {text!r}")
        number = int(member)
    if not 1 <= number <= 64:
        raise UsageError(f"bad signal number {text!r}")
    return number


#: The commands whose options the shell completes (``oar-celery completion``).
COMMANDS = ("oar-celery", "oarsub", "oarstat", "oardel", "oarhold", "oarresume", "oarnodes", "oarnodesetting",
            "oarremoveresource", "oarproperty", "oaradmissionrules", "oarqueue", "oarnotify", "oaraccounting",
            "oarwalltime", "oarsh", "oarcp")


def offer_completion(build_parser: Callable[[], argparse.ArgumentParser] | None) -> None:
    """When the shell asks for completions (argcomplete's ``_ARGCOMPLETE``): answer and exit; else nothing."""
    if build_parser is None or "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(build_parser())


def run(command: str, body: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """Run a command's body and turn every failure into an exit status and one line."""
    offer_completion(getattr(sys.modules.get(body.__module__), "build_parser", None))
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return body(args)
    except UsageError as exc:
        error_line(command, f"{exc} (see {command} --help)" if exc.hint else exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, or a body that exits on purpose
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILURE)
    except KeyboardInterrupt:
        error_line(command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILURE
    except (ClientError, OSError) as exc:
        error_line(command, exc)
        return EXIT_FAILURE
    except Exception as exc:
        error_line(command, describe(exc))
        return EXIT_FAILURE


def describe(exc: Exception) -> str:
    """One line for an error the command did not foresee (user input, database, bug)."""
    from oar_celery.scheduler.errors import RequestError

    if isinstance(exc, RequestError):
        return str(exc)
    if _is_database_error(exc):
        from oar_celery.client.errors import reason
        from oar_celery.client.queries import database_text

        return f"cannot reach the database at {database_text()} ({reason(exc)})"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _is_database_error(exc: Exception) -> bool:
    module = sys.modules.get("sqlalchemy.exc")
    return module is not None and isinstance(exc, module.SQLAlchemyError)


def _silence_stdout() -> None:
    """After ``oarstat | head`` closed the pipe, keep Python quiet at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def emit(text: str) -> None:
    """Print a block of output, if there is any."""
    if text:
        print(terminal_safe(text))


def print_outcome(outcome: dict[int, str], failed: set[int]) -> int:
    """Print the head's line for each job (failures on stderr); 1 if any job failed."""
    for job_id, line in outcome.items():
        print(escape_controls(line), file=sys.stderr if job_id in failed else sys.stdout)
    return EXIT_FAILURE if failed else 0


def array_jobs(array_id: int) -> list[int]:
    """The unfinished jobs of an array (``--array ID``), read from the database."""
    from oar_celery.client import api

    ids = [job["id"] for job in api.jobs(array_id=array_id, current_only=True)]
    if not ids:
        raise ClientError(f"array {array_id} has no unfinished job")
    return ids


def job_selection_parser(prog: str, description: str) -> Parser:
    """A parser for the commands that act on jobs: ids, or every unfinished job of ``--array ID``."""
    p = parser(prog, description)
    add_version(p)
    p.add_argument("job_ids", nargs="*", type=positive_int, metavar="ID", help="job ids")
    p.add_argument("--array", dest="array_id", type=positive_int, metavar="ID",
                   help="every unfinished job of this array")
    p.add_argument("--sql", metavar="CLAUSE", help="every unfinished job matching this clause on the jobs columns")
    return p


def parse_job_selection(p: Parser, argv: Sequence[str]) -> argparse.Namespace:
    args = p.parse_args(argv)
    if not args.job_ids and args.array_id is None and args.sql is None:
        raise UsageError("no job id given")
    return args


def sql_jobs(clause: str) -> list[int]:
    """OAR3's ``--sql``: the unfinished jobs whose columns satisfy the clause (parsed, never pasted)."""
    from oar_celery.client import api
    from oar_celery.client.queries import job_sql_row
    from oar_celery.client.sql_filter import kinds, select_rows
    from oar_celery.db.models import Job

    columns = kinds(Job.__table__)
    select_rows([], clause, columns, job_sql_row)  # a clause that does not parse fails before any read
    return [job["id"] for job in select_rows(api.jobs(current_only=True), clause, columns, job_sql_row)]


def selected_jobs(args: argparse.Namespace) -> list[int]:
    """The job ids named on the command line, then the array's, then ``--sql``'s, each once.

    ``--sql`` matching nothing is OAR3's "There are no job for this SQL WHERE clause".
    """
    ids = [*args.job_ids, *(array_jobs(args.array_id) if args.array_id else [])]
    if args.sql is not None:
        matched = sql_jobs(args.sql)
        if not matched and not ids:
            raise ClientError(f"There are no job for this SQL WHERE clause ({args.sql})")
        ids += matched
    return list(dict.fromkeys(ids))
