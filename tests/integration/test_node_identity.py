"""Who a job may run as on a node, checked without starting a worker."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from oar_celery.config import Settings
from oar_celery.node import supervisor
from oar_celery.node.environment import lookup_account
from oar_celery.node.jobdir import JobDir
from oar_celery.node.supervisor import JobRefused, Supervisor
from oar_celery.scheduler.walltime import format_walltime


def _supervisor(tmp_path: Path, user: str, **config: object) -> Supervisor:
    spec = {"job_id": 1, "user": user, "command": "true", "directory": str(tmp_path)}
    return Supervisor(None, Settings(state_dir=str(tmp_path), **config), "n1", JobDir(tmp_path, 1), spec)  # type: ignore[arg-type]


def test_a_worker_not_run_by_root_runs_only_its_own_users_jobs(tmp_path: Path, monkeypatch):
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(supervisor.os, "geteuid", lambda: nobody.pw_uid)
    with pytest.raises(JobRefused) as refused:
        _supervisor(tmp_path, "root")._account()
    assert refused.value.reason == "launch_error"
    assert refused.value.message == "this node runs jobs of user nobody only"
    assert _supervisor(tmp_path, "nobody")._account().uid == nobody.pw_uid


def test_root_jobs_can_be_refused(tmp_path: Path):
    with pytest.raises(JobRefused, match="root"):
        _supervisor(tmp_path, "root", allow_root_jobs=False)._account()


def test_unknown_user_and_unusable_shell():
    assert lookup_account("no-such-oar-user") is None
    assert lookup_account("nobody").shell == "/bin/sh"  # nologin cannot run a command


def test_walltime_format():
    assert [format_walltime(s) for s in (0, 59, 3600, 3725, 90000)] == [
        "0:00:00",
        "0:00:59",
        "1:00:00",
        "1:02:05",
        "25:00:00",
    ]
