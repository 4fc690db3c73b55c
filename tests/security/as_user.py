"""Run one user command as another account, as that user would at a terminal.

The test's Python lives under root's home, which other accounts cannot
read, so this script (started as root, with the cluster's environment)
imports and warms up everything the command needs, then drops to the
account's uid, gid and groups, and only then runs the command: the command
sees the account from the operating system, as it would on a login node.

usage: as_user.py USER COMMAND [ARGS...]
  COMMAND: oarsub, oardel, oarhold, oarresume, oarstat, oarproperty, oarnodesetting,
  oarremoveresource, oarsh, or admin for oar-celery
"""

from __future__ import annotations

import importlib
import os
import pwd
import sys


def warm_up() -> None:
    """Load every module and connection class the commands use before root is given up."""
    from oar_celery.celery_app import app
    from oar_celery.client import api, transport  # noqa: F401

    for name in ("oarsub", "oardel", "oarhold", "oarresume", "oarstat", "oarproperty", "oarnodesetting",
                 "oarremoveresource", "admin", "interactive", "oarsh"):
        importlib.import_module(f"oar_celery.cli.{name}")
    from oar_celery.client import jobshell  # noqa: F401  (TLS to the nodes: ssl, and idna for their names)
    from oar_celery.head import properties  # noqa: F401  (oarproperty checks names with it)

    "node".encode("idna")
    importlib.import_module("celery.exceptions")
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
    result = app.AsyncResult("warm-up")
    result.ready()
    app.backend.forget("warm-up")
    from oar_celery.protocol import auth  # noqa: F401
    from oar_celery.scheduler import filters, request  # noqa: F401


def become(user: str) -> None:
    entry = pwd.getpwnam(user)
    os.setgroups(os.getgrouplist(user, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)


def main() -> int:
    user, command, *args = sys.argv[1:]
    warm_up()
    become(user)
    module = importlib.import_module(f"oar_celery.cli.{command}")
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
