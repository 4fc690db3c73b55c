"""oarsh and oarcp: a shell, a command or a copy on another node of one's job, without sshd.

As OAR3's oarsh, from inside a job it reaches the job's nodes only, and runs
there in the job's cgroup; from outside, a job key (``-i FILE`` or
``OAR_JOB_KEY_FILE``, made by ``oarsub -k -e FILE``) says which job. The key
of the job's own processes is in ``OAR_JOB_KEY_FILE`` already, so MPI launchers
set up with ``plm_rsh_agent=oarsh`` work as they do on OAR. The node refuses a
host outside the job, an ended job or a wrong key with one line, which oarsh
prints, exiting 255 as ssh does.
"""

from __future__ import annotations

import argparse
import os
import sys

from oar_celery.cli.common import Parser, UsageError, add_version, error_line, parser, run
from oar_celery.client.errors import ClientError
from oar_celery.protocol.jobshell import JobKey

#: ssh's status when the connection itself failed.
EXIT_CONNECTION = 255


def job_key(path: str | None) -> JobKey:
    """The job key to use: ``-i``, else ``OAR_JOB_KEY_FILE``; completed by the head for a key without nodes."""
    from oar_celery.client.jobshell import read_key_file

    path = path or os.environ.get("OAR_JOB_KEY_FILE")
    if not path:
        raise UsageError("no job key: run oarsh inside a job, or give -i FILE (oarsub -k -e FILE makes one)")
    key = read_key_file(path)
    if not key.get("ticket") or not key.get("nodes"):
        from oar_celery.client import api

        answer = api.job_key(int(key["job_id"]))
        if answer.get("state") != "Running":
            raise ClientError(f"job {key['job_id']} is not running (current state is {answer.get('state')})")
        given = key["key"]
        key = answer["job_key"]
        key["key"] = given
    return key


def remote(key: JobKey, host: str, command: str | None, *, tty_mode: bool, stdin: object = None,
           stdout: object = None) -> int:
    """Run ``command`` (None: a shell) on ``host`` in the job; its exit status."""
    from oar_celery.client import jobshell
    from oar_celery.config import settings

    sock = jobshell.open_session(settings().keys, key, host, command, tty_mode=tty_mode)
    with sock:
        outcome = jobshell.relay(sock, tty_mode=tty_mode, stdin=stdin, stdout=stdout)  # type: ignore[arg-type]
    if outcome.reason == "lost":
        error_line("oarsh", f"connection to {host} lost")
        return EXIT_CONNECTION
    return outcome.code


# ---------------------------------------------------------------------------- oarsh


def build_parser() -> Parser:
    p = parser("oarsh", "A shell or a command on a node of your job (OAR's oarsh).")
    add = p.add_argument
    add("-i", dest="key_file", metavar="FILE", help="the job key file (default: OAR_JOB_KEY_FILE)")
    add("-t", dest="tty", action="store_const", const=True, default=None, help="force a terminal")
    add("-T", dest="tty", action="store_const", const=False, help="no terminal")
    add("-l", dest="login", metavar="USER", help="ignored: the job's user is the only one")
    add("-o", dest="ssh_options", action="append", default=[], metavar="OPTION", help="ignored (ssh's options)")
    add("-q", action="store_true", help="ignored")
    add("-x", action="store_true", help="ignored")
    add_version(p)
    add("host", help="a node of the job ([user@]host)")
    add("command", nargs=argparse.REMAINDER, help="the command (default: a shell)")
    return p


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    host = args.host.split("@", 1)[-1]
    command = " ".join(args.command) if args.command else None
    tty_mode = args.tty if args.tty is not None else (command is None and sys.stdin.isatty())
    try:
        return remote(job_key(args.key_file), host, command, tty_mode=tty_mode)
    except ClientError as error:
        error_line("oarsh", error)
        return EXIT_CONNECTION


def main(argv: list[str] | None = None) -> int:
    return run("oarsh", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
