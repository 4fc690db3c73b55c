"""Who acts, and as whom jobs run, on a real cluster whose node workers run as root.

Throwaway accounts (useradd) submit and act through the real commands,
which take the user from the operating system: a user acts only on their own
jobs (root and the admin user on all), a job runs with its user's uid, gid
and groups and writes its output files as that user, and a user the node
does not know ends the job in Error with a message that says so.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster import LocalCluster

pytestmark = pytest.mark.cluster

AS_USER = Path(__file__).with_name("as_user.py")
ROOT = Path(__file__).parents[2]


def as_user(cluster: LocalCluster, user: str, command: str, *args: str,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(AS_USER), user, command, *args], env=env, cwd=cwd or "/",
                          capture_output=True, text=True, timeout=60)


def submit_as(cluster: LocalCluster, user: str, directory: Path, command: str) -> int:
    done = as_user(cluster, user, "oarsub", "-l", "/core=1", "-d", str(directory), command, cwd=directory)
    match = re.search(r"^OAR_JOB_ID=(\d+)$", done.stdout, re.M)
    assert done.returncode == 0 and match, f"oarsub as {user}: {done.stdout} {done.stderr}"
    return int(match.group(1))


@pytest.fixture(scope="module")
def secure_cluster(cluster_factory, accounts):  # type: ignore[no-untyped-def]
    """A cluster whose users prove who they are (``up --auth``: authd and a key)."""
    socket = f"/tmp/oar-authd-{uuid.uuid4().hex[:8]}.sock"
    return cluster_factory(nodes=2, cores=2, up_args=("--auth",), OAR_ADMIN_USER="oar", OAR_AUTH_SOCKET=socket)


def test_job_runs_as_its_user_with_groups_and_owns_its_output(secure_cluster, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    alice = accounts["alice"]
    job_id = submit_as(secure_cluster, alice, shared_dir, "id -u; id -g; id -G")
    assert secure_cluster.job(job_id)["job_user"] == alice
    assert secure_cluster.wait_for(job_id)[job_id] == "Terminated"
    out = shared_dir / f"OAR.{job_id}.stdout"
    uid, gid, groups = out.read_text().splitlines()[:3]
    entry = pwd.getpwnam(alice)
    assert (int(uid), int(gid)) == (entry.pw_uid, entry.pw_gid)
    assert grp.getgrnam(accounts["group"]).gr_gid in {int(g) for g in groups.split()}
    for stream in ("stdout", "stderr"):
        assert os.stat(shared_dir / f"OAR.{job_id}.{stream}").st_uid == entry.pw_uid


@pytest.mark.parametrize("command,extra", [("oardel", ()), ("oarhold", ()), ("oarresume", ()),
                                           ("oardel", ("-s", "USR1"))])
def test_only_owner_root_or_admin_act_on_a_job(secure_cluster, accounts, shared_dir, command, extra) -> None:  # type: ignore[no-untyped-def]
    job_id = submit_as(secure_cluster, accounts["alice"], shared_dir, "sleep 30")
    try:
        refused = as_user(secure_cluster, accounts["bob"], command, *extra, str(job_id))
        assert refused.returncode != 0, refused.stdout
        assert f"belongs to {accounts['alice']}" in refused.stdout + refused.stderr
        assert len(refused.stderr.strip().splitlines()) <= 1
        assert "Traceback" not in refused.stderr
        assert secure_cluster.job(job_id)["job_user"] == accounts["alice"]
    finally:
        secure_cluster.run("oardel", str(job_id))  # root may
    secure_cluster.wait_for(job_id)


def test_owner_holds_and_resumes_own_job(secure_cluster, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    alice = accounts["alice"]
    done = as_user(secure_cluster, alice, "oarsub", "--hold", "-l", "/core=1", "-d", str(shared_dir), "true",
                   cwd=shared_dir)
    job_id = int(re.search(r"OAR_JOB_ID=(\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    assert secure_cluster.state(job_id) == "Hold"
    assert as_user(secure_cluster, alice, "oarresume", str(job_id)).returncode == 0
    assert secure_cluster.wait_for(job_id)[job_id] == "Terminated"


def test_an_ordinary_user_is_refused_the_admin_queue_in_one_line(secure_cluster, accounts, shared_dir) -> None:  # type: ignore[no-untyped-def]
    """OAR3's admission rule: ``-q admin`` is for the admin user and group only; the refusal stores nothing."""
    before = secure_cluster.query("SELECT count(*) FROM jobs")[0][0]
    refused = as_user(secure_cluster, accounts["bob"], "oarsub", "-q", "admin", "-l", "/core=1",
                      "-d", str(shared_dir), "true", cwd=shared_dir)
    assert refused.returncode != 0, refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1 and "admin" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert secure_cluster.query("SELECT count(*) FROM jobs")[0][0] == before
