"""A throwaway Unix user for the tests that need a second identity (ownership, notification scripts).

The tests run as root: they create the user with ``useradd`` and remove it
afterwards; elsewhere they are skipped. A user command is run as that user by
a root Python that first runs the same command on a job that does not exist
(so every lazy import is done), then drops to the user's uid: the
interpreter itself may live where the user cannot read (``/root``).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def throwaway_user() -> Iterator[str]:
    """A new user with no home directory; removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root")
    name = f"oartest{uuid.uuid4().hex[:6]}"
    done = subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"useradd failed: {done.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def run_command_as(
    cluster: Any, user: str, command: str, *args: str, warm_up: Sequence[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``oardel``, ``oarhold``... as ``user`` with the cluster's settings.

    ``warm_up``: the arguments of the run as root that does the lazy imports
    (default: the same with the last one replaced by a job that does not exist).
    """
    entry = pwd.getpwnam(user)
    first = repr(list(warm_up)) if warm_up is not None else "[*sys.argv[1:-1], '2147483647']"
    code = (
        "import contextlib, importlib, io, os, sys\n"
        f"main = importlib.import_module('oar_celery.cli.{command}').main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    main({first})  # as root, on no job: every lazy import done\n"
        f"os.setgroups([]); os.setgid({entry.pw_gid}); os.setuid({entry.pw_uid})\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=cluster.env, cwd="/", capture_output=True, text=True, timeout=60
    )
