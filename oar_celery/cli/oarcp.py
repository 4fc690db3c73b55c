"""oarcp: copy files to or from another node of one's job, as OAR's oarcp (over oarsh's job shells).

One side is ``HOST:PATH`` (a relative path is in the job's working
directory on that node); the data goes through a ``cat`` or, with ``-r``, a
``tar`` on the remote side, so that it is written as the job's user there.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from oar_celery.cli.common import Parser, UsageError, add_version, error_line, parser, run
from oar_celery.cli.oarsh import EXIT_CONNECTION, job_key, remote
from oar_celery.client.errors import ClientError
from oar_celery.protocol.jobshell import JobKey


def build_parser() -> Parser:
    p = parser("oarcp", "Copy files to or from a node of your job (OAR's oarcp).")
    p.add_argument("-i", dest="key_file", metavar="FILE", help="the job key file (default: OAR_JOB_KEY_FILE)")
    p.add_argument("-r", dest="recursive", action="store_true", help="copy directories")
    p.add_argument("-p", dest="preserve", action="store_true", help="ignored (modes are kept with -r)")
    add_version(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="SOURCE... DESTINATION; one side is HOST:PATH")
    return p


def _split(path: str) -> tuple[str | None, str]:
    head, sep, tail = path.partition(":")
    if sep and "/" not in head and head:
        return head.split("@", 1)[-1], tail or "."
    return None, path


def copy(key: JobKey, sources: list[str], destination: str, *, recursive: bool) -> int:
    """Each source to the destination, through a ``cat`` or ``tar`` on the remote side."""
    target_host, target = _split(destination)
    status = 0
    for source in sources:
        source_host, path = _split(source)
        if (source_host is None) == (target_host is None):
            raise UsageError("one side of a copy must be HOST:PATH, the other a local path")
        if target_host is not None:
            status = status or _push(key, target_host, path, target, recursive=recursive)
        else:
            assert source_host is not None
            status = status or _pull(key, source_host, path, target, recursive=recursive)
    return status


def _push(key: JobKey, host: str, path: str, target: str, *, recursive: bool) -> int:
    local = Path(path)
    if local.is_dir():
        if not recursive:
            raise UsageError(f"{path} is a directory (use -r)")
        with tempfile.TemporaryFile() as archive:
            import tarfile

            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(str(local), arcname=local.name)
            archive.seek(0)
            quoted = shlex.quote(target)
            command = f"mkdir -p {quoted} && tar -C {quoted} -xf -"
            return remote(key, host, command, tty_mode=False, stdin=archive, stdout=sys.stdout.buffer)
    quoted = shlex.quote(target)
    command = f"if [ -d {quoted} ]; then exec cat > {quoted}/{shlex.quote(local.name)}; else exec cat > {quoted}; fi"
    with open(local, "rb") as data:
        return remote(key, host, command, tty_mode=False, stdin=data, stdout=sys.stdout.buffer)


def _pull(key: JobKey, host: str, path: str, target: str, *, recursive: bool) -> int:
    local = Path(target)
    if recursive:
        import tarfile

        with tempfile.TemporaryFile() as archive, open(os.devnull, "rb") as nothing:
            quoted = shlex.quote(path)
            command = f"cd \"$(dirname {quoted})\" && tar -cf - \"$(basename {quoted})\""
            status = remote(key, host, command, tty_mode=False, stdin=nothing, stdout=archive)
            if status == 0:
                archive.seek(0)
                local.mkdir(parents=True, exist_ok=True)
                with tarfile.open(fileobj=archive, mode="r") as tar:
                    tar.extractall(local, filter="data")
            return status
    if local.is_dir():
        local = local / Path(path).name
    with open(local, "wb") as out, open(os.devnull, "rb") as nothing:
        return remote(key, host, f"exec cat {shlex.quote(path)}", tty_mode=False, stdin=nothing, stdout=out)


def _cp_body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if len(args.paths) < 2:
        raise UsageError("a copy needs a source and a destination")
    try:
        return copy(job_key(args.key_file), args.paths[:-1], args.paths[-1], recursive=args.recursive)
    except ClientError as error:
        error_line("oarcp", error)
        return EXIT_CONNECTION


def main(argv: list[str] | None = None) -> int:
    return run("oarcp", _cp_body, argv)


if __name__ == "__main__":
    sys.exit(main())
