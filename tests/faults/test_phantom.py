"""No phantom submission: what ``oarsub`` answers and what the database holds always agree.

The database stays locked longer than the command waits, or the broker dies just after the
head took the submission: either the command prints a job id and that job runs once, or it
prints an error and no job exists, then or later.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cluster import LocalCluster, command_path
from tests.faults.counting import launch_command, launches_of
from tests.faults.services import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.cluster

SUBMIT_TASK = "oar.almighty.submit"


def oarsub(cluster: LocalCluster, command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([command_path("oarsub"), "-l", "/core=1", command], env=cluster.env,
                            cwd=cluster.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def agree(cluster: LocalCluster, done: subprocess.CompletedProcess[str] | tuple[int, str, str],
          launches: Path, probe: int) -> str:
    """Check that the command's answer and the database agree; which of the two outcomes it was."""
    code, out, err = done if isinstance(done, tuple) else (done.returncode, done.stdout, done.stderr)
    others = [row[0] for row in cluster.query("SELECT job_id FROM jobs WHERE job_id <> :p", p=probe)]
    match = re.search(r"^OAR_JOB_ID=(\d+)$", out, re.M)
    if code == 0:
        assert match, out
        job_id = int(match.group(1))
        assert others == [job_id], f"answered {job_id}, the database holds {others}"
        assert cluster.wait_for(job_id, timeout=60)[job_id] == "Terminated"
        assert launches_of(launches)[job_id] == 1
        return f"accepted once as job {job_id}"
    assert not match and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert others == [], f"the command said {err.strip()!r}, the database holds jobs {others}"
    assert not cluster.scalar("SELECT count(*) FROM job_submissions WHERE job_ids <> :p", p=f"[{probe}]")
    return f"refused: {err.strip()}"


def probe_job(cluster: LocalCluster, launches: Path) -> int:
    """A job submitted and run after the fault: every message of before has been dealt with by then."""
    job_id = cluster.oarsub("-l", "/core=1", launch_command(launches))
    assert cluster.wait_for(job_id, timeout=90)[job_id] == "Terminated"
    return job_id


def test_database_locked_longer_than_the_command_waits(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=1, cores=2, OAR_CLIENT_TIMEOUT="30")
    with cluster.engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
        release = threading.Timer(45, transaction.rollback)
        release.start()
        try:
            process = oarsub(cluster, launch_command(launches))
            out, err = process.communicate(timeout=120)
        finally:
            release.join()
    probe = probe_job(cluster, launches)
    outcome = agree(cluster, (process.returncode, out, err), launches, probe)
    assert "nothing was submitted" in outcome, outcome  # 30 s < 45 s: the head gave up at the deadline


def _wait_for_push(monitor: object, deadline: float) -> None:
    """Until the command's LPUSH of its submission onto the head's queue (Redis' MONITOR)."""
    for command in monitor.listen():  # type: ignore[attr-defined]
        line = str(command.get("command", ""))
        if line.upper().startswith("LPUSH OAR.HEAD") and SUBMIT_TASK in line:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the command never pushed its submission")


def _wait_until_taken(client: object, deadline: float) -> None:
    """Until the submission has left the head's queue: the head worker took it."""
    while SUBMIT_TASK.encode() in b"".join(client.lrange("oar.head", 0, -1)):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise AssertionError("the head never took the submission")
        time.sleep(0.001)


def test_redis_stopped_30_ms_after_the_head_took_the_submission(cluster_factory, private_redis: PrivateRedis,  # type: ignore[no-untyped-def]
                                                                 launches: Path) -> None:
    import redis

    cluster = cluster_factory(nodes=1, cores=2, OAR_BROKER_URL=private_redis.url, OAR_CLIENT_TIMEOUT="30")
    client = redis.Redis.from_url(private_redis.url)
    with client.monitor() as monitor:
        process = oarsub(cluster, launch_command(launches))
        _wait_for_push(monitor, time.monotonic() + 30)
    _wait_until_taken(client, time.monotonic() + 10)
    time.sleep(0.03)
    private_redis.stop()
    time.sleep(2)
    private_redis.start()
    out, err = process.communicate(timeout=120)
    probe = probe_job(cluster, launches)
    outcome = agree(cluster, (process.returncode, out, err), launches, probe)
    assert "accepted once" in outcome, outcome  # the head had committed it: asked again, it gave the id


def test_postgres_restarted_during_a_submission(cluster_factory, private_postgres: PrivatePostgres,  # type: ignore[no-untyped-def]
                                                launches: Path) -> None:
    cluster = cluster_factory(nodes=1, cores=2, OAR_DATABASE_URL=private_postgres.url, OAR_CLIENT_TIMEOUT="30")
    private_postgres.stop()
    process = oarsub(cluster, launch_command(launches))
    time.sleep(3)
    private_postgres.start()
    out, err = process.communicate(timeout=120)
    cluster.engine.dispose()
    probe = probe_job(cluster, launches)
    outcome = agree(cluster, (process.returncode, out, err), launches, probe)
    assert "accepted once" in outcome, outcome  # the head waited for the database instead of refusing the job
