"""Where a job's stdout and stderr go: OAR's ``OAR.<name>.<id>.stdout`` unless ``-O``/``-E``.

Shared by the Runner (which tells the node) and oarstat (which shows them),
so that both name the same files. Pure: works on any object with the
``jobs`` columns ``job_id``, ``job_name``, ``launching_directory``,
``stdout_file`` and ``stderr_file``.
"""

from __future__ import annotations

import os
from typing import Any


def _resolve(template: str | None, default: str, job: Any) -> str:
    path = (template or default).replace("%jobid%", str(job.job_id))
    path = path.replace("%jobname%", job.job_name or "")
    return path if os.path.isabs(path) else os.path.join(job.launching_directory or "", path)


def output_paths(job: Any) -> tuple[str, str]:
    """The job's stdout and stderr files: ``OAR.<name>.<id>.stdout`` unless ``-O``/``-E``."""
    stem = f"OAR.{job.job_name}.%jobid%" if job.job_name else "OAR.%jobid%"
    return (
        _resolve(job.stdout_file, f"{stem}.stdout", job),
        _resolve(job.stderr_file, f"{stem}.stderr", job),
    )
