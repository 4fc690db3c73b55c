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


@pytest.mark.parametrize("shell_name", ["bash", "other-shell"])
def test_the_keeper_records_the_status_for_a_bourne_shell_and_for_another(tmp_path: Path, shell_name: str):
    """bash runs the command in a subshell of the keeper; another shell is exec'd by a /bin/sh keeper."""
    import dataclasses
    import os
    import signal
    import time

    from oar_celery.node import process

    shell = tmp_path / shell_name
    shell.symlink_to("/bin/bash")
    account = dataclasses.replace(lookup_account("root"), shell=str(shell))  # type: ignore[arg-type]
    files = (tmp_path / "exit", tmp_path / "launch.err")
    out, err = str(tmp_path / "out"), str(tmp_path / "err")
    env = {"PATH": "/usr/bin:/bin"}
    done = process.start_job(account, 'echo "$0 $#"; echo oops >&2; exit 3', str(tmp_path), out, err, env, files)
    process.release(done)
    assert done.wait(10) == 3 and process.read_exit(files[0]) == 3
    assert Path(out).read_text() == f"{shell} 0\n" and Path(err).read_text() == "oops\n"
    killed = process.start_job(account, "sleep 30", str(tmp_path), out, err, env, files)
    process.release(killed)
    time.sleep(0.3)
    os.killpg(killed.pid, signal.SIGTERM)  # the keeper catches it, the job dies of it
    assert killed.wait(10) == 128 + signal.SIGTERM and process.read_exit(files[0]) == 128 + signal.SIGTERM
    assert files[1].read_text() == ""  # the shell's "Terminated" is no launch error
