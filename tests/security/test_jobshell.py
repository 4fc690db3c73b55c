"""Shells in jobs across accounts: the owner gets in as themselves, another user is refused by the head.

The cluster proves its users (``up --auth``), so the user asking for a job's
key is the one the kernel says, never the one a request names.
"""

from __future__ import annotations

import pwd
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import LocalCluster
from tests.security.test_identity import ROOT, submit_as

pytestmark = pytest.mark.cluster

AS_USER = Path(__file__).with_name("as_user.py")


@pytest.fixture(scope="module")
def secure_cluster(cluster_factory: Any, accounts: dict[str, str]) -> LocalCluster:
    socket = f"/tmp/oar-authd-{uuid.uuid4().hex[:8]}.sock"
    return cluster_factory(nodes=2, cores=2, up_args=("--auth",), OAR_ADMIN_USER="oar", OAR_AUTH_SOCKET=socket)


def as_user(cluster: LocalCluster, user: str, command: str, *args: str, stdin: str = "",
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(AS_USER), user, command, *args], env=env, cwd=cwd or "/",
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_the_owner_connects_as_themselves_and_another_user_is_refused(
        secure_cluster: LocalCluster, accounts: dict[str, str], shared_dir: Path) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    job_id = submit_as(secure_cluster, alice, shared_dir, "sleep 300")
    secure_cluster.wait_for(job_id, ["Running"])

    mine = as_user(secure_cluster, alice, "oarsub", "-C", str(job_id),
                   stdin='echo "me=$(id -un):$OAR_JOB_ID:$(pwd)"; exit 4\n', cwd=shared_dir)
    assert mine.returncode == 4, mine.stderr
    assert f"me={alice}:{job_id}:{shared_dir}" in mine.stdout

    theirs = as_user(secure_cluster, bob, "oarsub", "-C", str(job_id), stdin="id\n", cwd=shared_dir)
    assert theirs.returncode != 0
    assert theirs.stderr.strip() == f"oarsub: error: job {job_id} belongs to {alice}, not to {bob}"
    assert "uid=" not in theirs.stdout
    head_log = (secure_cluster.state_dir / "log" / "oar-head.log").read_text()
    assert f"job key of job {job_id} refused to {bob}" in head_log

    key_file, = secure_cluster.state_dir.glob(f"nodes/*/jobs/{job_id}/job_key")  # the job's own (oarsh)
    assert (key_file.stat().st_uid, key_file.stat().st_mode & 0o777) == (pwd.getpwnam(alice).pw_uid, 0o600)
    secure_cluster.end_active_jobs()
