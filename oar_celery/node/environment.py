"""Who a job runs as and the environment it sees.

A job never inherits the worker's environment (which may hold broker or
database credentials): it gets a minimal login-like environment built from the
user's passwd entry, the ``OAR_*`` variables OAR documents, and the variables
the head computed for it.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from oar_celery.accounts import Account, lookup_account
from oar_celery.node.jobdir import write_all
from oar_celery.scheduler.walltime import format_walltime

__all__ = ["Account", "job_environment", "lookup_account"]

_PATH = "/usr/local/bin:/usr/bin:/bin"
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _text(value: Any, default: Any = "") -> str:
    return str(default if value is None else value)


def job_environment(spec: dict[str, Any], account: Account, nodefile: Path) -> dict[str, str]:
    """The complete environment of the job's shell (and of prologue and epilogue)."""
    job_id = spec["job_id"]
    directory = spec["directory"]
    walltime = int(spec.get("walltime") or 0)
    env = {
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "SHELL": account.shell,
        "PATH": commands_path(_ROOT_PATH if account.uid == 0 else _PATH),
    }
    for name in ("LANG", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    for name in ("OAR_JOB_ID", "OAR_JOBID"):
        env[name] = str(job_id)
    for name in ("OAR_NODEFILE", "OAR_NODE_FILE", "OAR_FILE_NODES"):
        env[name] = str(nodefile)
    properties = resource_properties_file(spec, nodefile)
    for name in ("OAR_RESOURCE_PROPERTIES_FILE", "OAR_RESOURCE_FILE"):  # OAR: the file of resource properties
        env[name] = properties
    for name in ("OAR_WORKDIR", "OAR_WORKING_DIRECTORY", "OAR_O_WORKDIR"):
        env[name] = directory
    env.update(
        OAR_JOB_NAME=_text(spec.get("name")),
        OAR_JOB_WALLTIME=format_walltime(walltime),
        OAR_JOB_WALLTIME_SECONDS=str(walltime),
        OAR_USER=account.name,
        OAR_JOB_USER=account.name,
        OAR_ARRAY_ID=_text(spec.get("array_id"), job_id),
        OAR_ARRAYID=_text(spec.get("array_id"), job_id),
        OAR_ARRAY_INDEX=_text(spec.get("array_index"), 1),
        OAR_ARRAYINDEX=_text(spec.get("array_index"), 1),
        OAR_PROJECT_NAME=_text(spec.get("project"), "default"),
        OAR_STDOUT=_text(spec.get("stdout")),
        OAR_STDERR=_text(spec.get("stderr")),
    )
    env.update({str(key): _text(value) for key, value in (spec.get("env") or {}).items()})
    return env


def commands_path(path: str) -> str:
    """The job's PATH, with OAR's commands (``oarsh``, ``oarcp``, ``oarsub``...) where this node has them."""
    commands = _commands_dir()
    if commands is None or commands in path.split(":"):
        return path
    return f"{path}:{commands}"


@lru_cache(maxsize=1)
def _commands_dir() -> str | None:
    """The directory of this node's OAR commands, None without ``oarsh``: looked for once, not per job."""
    commands = os.path.dirname(sys.executable)
    return commands if os.path.exists(os.path.join(commands, "oarsh")) else None


def resource_properties_file(spec: dict[str, Any], nodefile: Path) -> str:
    """Write the job's resource properties (OAR's ``<job id>_resources`` file) beside its node file.

    The head sends the text in OAR's line format (``resource_properties``);
    written here, with the environment that names it, so that prologue and
    job find it. One ``open`` and one ``write``: it is written for every job.
    """
    path = os.path.join(os.path.dirname(nodefile), "resource_properties")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        write_all(fd, str(spec.get("resource_properties") or "").encode())
    finally:
        os.close(fd)
    return path
