"""Job control on a real cluster: walltime, checkpoint, oardel, oarhold -r / oarresume, exit codes, Sarko.

Real head worker, beat and node workers against PostgreSQL; jobs are real
processes whose state the tests read from ``/proc``. Timers are short (kill
grace 2 s, Sarko every second, Leon's soft timer 2 s) so that each test takes
a few seconds.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.cluster import LocalCluster
from tests.integration.nodehelpers import is_suspended, proc_state
from tests.integration.users import run_command_as, throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

GRACE = 2.0
LEON_SOFT = 2
LEON_HARD = 30


@pytest.fixture(scope="module")
def cluster(cluster_factory) -> LocalCluster:  # type: ignore[no-untyped-def]
    return cluster_factory(
        nodes=2, cores=2, OAR_KILL_GRACE=str(GRACE), OAR_LEON_SOFT_WALLTIME=str(LEON_SOFT),
        OAR_LEON_WALLTIME=str(LEON_HARD), OAR_DEAD_SWITCH_TIME="3",
    )


# ------------------------------------------------------------------------------------------ helpers


def job_pid(cluster: LocalCluster, job_id: int) -> int:
    """The job's process group id, as the node recorded it."""

    def read() -> int | None:
        for path in (cluster.state_dir / "nodes").glob(f"*/jobs/{job_id}/pid"):
            fields = path.read_text().split()  # the keeper's pid, its start time, when the job started
            if fields and fields[0].isdigit():
                return int(fields[0])
        return None

    return cluster.wait_until(read, timeout=20, message=f"pid of job {job_id}")


def running(cluster: LocalCluster, *args: str) -> tuple[int, int]:
    """Submit a job, wait until it runs; its id and process group id."""
    job_id = cluster.oarsub(*args)
    cluster.wait_for(job_id, ["Running"], timeout=30)
    return job_id, job_pid(cluster, job_id)


def frag_state(cluster: LocalCluster, job_id: int) -> str | None:
    return cluster.scalar("SELECT frag_state FROM frag_jobs WHERE frag_id_job = :id", id=job_id)


def job_count(cluster: LocalCluster) -> int:
    return cluster.scalar("SELECT count(*) FROM jobs")


def execute(cluster: LocalCluster, sql: str, **params: object) -> None:
    """A committed write, for the faults the tests stage (a lost kill, an expired resource)."""
    with cluster.engine.begin() as connection:
        connection.execute(text(sql), params)


def arm_timer(cluster: LocalCluster, job_id: int, since: float) -> None:
    """Leon's timer armed at ``since`` without any kill sent: as if the kill was lost."""
    execute(cluster, "INSERT INTO frag_jobs (frag_id_job, frag_date, frag_state) VALUES (:id, :d, 'TIMER_ARMED')",
            id=job_id, d=since)


# ------------------------------------------------------------------------------------- walltime


def test_walltime_kills_the_job_with_a_walltime_event(cluster: LocalCluster):
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:00:03", "sleep 60")
    cluster.wait_for(job_id, timeout=3 + 2 * GRACE + 30)
    job = cluster.job(job_id)
    assert job["state"] == "Error"
    assert "WALLTIME" in cluster.events(job_id)
    assert proc_state(pid) == "gone"
    assert job["stop_time"] - job["start_time"] >= 3  # killed at its walltime, not before
    assert frag_state(cluster, job_id) == "FRAGGED"


def test_checkpoint_signal_is_sent_once_before_the_walltime(cluster: LocalCluster):
    script = "trap 'echo checkpointed >> ckpt.$OAR_JOB_ID' USR2; while :; do sleep 0.2; done"
    job_id, _ = running(cluster, "-l", "nodes=1,walltime=0:00:05", "--checkpoint", "2", "--signal", "12", script)
    cluster.wait_for(job_id, timeout=15)
    assert (cluster.workdir / f"ckpt.{job_id}").read_text() == "checkpointed\n"
    events = cluster.events(job_id)
    assert events.count("CHECKPOINT") == 1 and "WALLTIME" in events


def test_the_node_enforces_the_walltime_while_the_head_is_down(cluster: LocalCluster):
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:00:02", "sleep 60")
    cluster.signal_process("head", signal.SIGSTOP)
    try:
        started = time.monotonic()
        while proc_state(pid) != "gone" and time.monotonic() - started < 15:
            time.sleep(0.1)
        assert proc_state(pid) == "gone"
        assert cluster.state(job_id) == "Running"
    finally:
        cluster.signal_process("head", signal.SIGCONT)
    cluster.wait_for(job_id, timeout=15)
    assert cluster.state(job_id) == "Error" and "WALLTIME" in cluster.events(job_id)


# ------------------------------------------------------------------------------------------ oardel


def test_oardel_of_a_job_ignoring_sigterm_kills_it_after_the_grace(cluster: LocalCluster):
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:01:00", "trap '' TERM; while :; do sleep 0.2; done")
    started = time.monotonic()
    result = cluster.run("oardel", str(job_id))
    assert result.returncode == 0 and "REGISTERED" in result.stdout
    seen = set()
    while cluster.state(job_id) not in ("Error", "Terminated") and time.monotonic() - started < 15:
        seen.add(frag_state(cluster, job_id))
        time.sleep(0.05)
    assert cluster.state(job_id) == "Error"
    assert "TIMER_ARMED" in seen and frag_state(cluster, job_id) == "FRAGGED"
    assert proc_state(pid) == "gone"
    assert cluster.events(job_id)[0] == "FRAG_JOB_REQUEST"


def test_oardel_of_a_waiting_job_ends_it_before_it_starts(cluster: LocalCluster):
    job_id = cluster.oarsub("--hold", "-l", "nodes=1", "sleep 60")
    assert cluster.run("oardel", str(job_id)).returncode == 0
    cluster.wait_for(job_id, timeout=10)
    job = cluster.job(job_id)
    assert (job["state"], job["message"]) == ("Error", "job killed before it started")
    assert frag_state(cluster, job_id) == "FRAGGED"


def test_lost_kill_is_sent_again_after_leons_soft_timer(cluster: LocalCluster):
    """The kill never reached the node (an armed timer, no kill sent): Sarko re-arms Leon, who kills."""
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:01:00", "sleep 60")
    arm_timer(cluster, job_id, time.time() - LEON_SOFT - 0.5)
    cluster.wait_for(job_id, timeout=10)
    assert proc_state(pid) == "gone" and frag_state(cluster, job_id) == "FRAGGED"


def test_oardel_signal_and_checkpoint_reach_the_job(cluster: LocalCluster):
    script = (
        "trap 'echo usr1 >> sig.$OAR_JOB_ID' USR1; trap 'echo usr2 >> sig.$OAR_JOB_ID' USR2; "
        "while :; do sleep 0.2; done"
    )
    job_id, _ = running(cluster, "-l", "nodes=1,walltime=0:01:00", script)
    assert cluster.run("oardel", "-s", "SIGUSR1", str(job_id)).returncode == 0
    output = cluster.workdir / f"sig.{job_id}"
    cluster.wait_until(lambda: output.exists() and output.read_text() == "usr1\n", timeout=10, message="USR1")
    assert cluster.run("oardel", "-c", str(job_id)).returncode == 0
    cluster.wait_until(lambda: output.read_text() == "usr1\nusr2\n", timeout=10, message="checkpoint USR2")
    assert cluster.run("oardel", "-s", "10", str(job_id)).returncode == 0
    cluster.wait_until(lambda: output.read_text().count("usr1") == 2, timeout=10, message="signal 10")
    assert cluster.state(job_id) == "Running"
    assert cluster.events(job_id) == ["SIGNAL", "CHECKPOINT", "SIGNAL"]
    cluster.run("oardel", str(job_id))
    cluster.wait_for(job_id, timeout=10)


# --------------------------------------------------------------------------------- hold and resume


def test_oarhold_r_then_oarresume_stops_and_continues_and_extends_the_walltime(cluster: LocalCluster):
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:00:04", "while :; do sleep 0.2; done")
    result = cluster.run("oarhold", "-r", str(job_id))
    assert result.returncode == 0, result.stderr
    cluster.wait_for(job_id, ["Suspended"], timeout=5)
    cluster.wait_until(lambda: is_suspended(pid), timeout=5, message="process stopped")
    time.sleep(3)
    assert is_suspended(pid) and cluster.state(job_id) == "Suspended"
    assert cluster.run("oarresume", str(job_id)).returncode == 0
    cluster.wait_for(job_id, ["Running"], timeout=5)
    cluster.wait_until(lambda: not is_suspended(pid) and proc_state(pid) != "gone", timeout=5,
                       message="process continued")
    job = cluster.job(job_id)
    assert job["suspended_time"] >= 3
    cluster.wait_for(job_id, timeout=15)
    job = cluster.job(job_id)
    ran = job["stop_time"] - job["start_time"]
    assert ran >= 4 + job["suspended_time"] - 0.5, (ran, job["suspended_time"])
    assert "WALLTIME" in cluster.events(job_id)
    states = [row[0] for row in cluster.query(
        "SELECT job_state FROM job_state_logs WHERE job_id = :id ORDER BY job_state_log_id", id=job_id)]
    assert states[-4:] == ["Suspended", "Resuming", "Running", "Error"]
    assert {"HOLD_RUNNING_JOB", "RESUME_JOB"} <= set(cluster.events(job_id))


def test_a_lost_resume_is_sent_again_by_sarko(cluster: LocalCluster):
    """The job went ``Resuming`` but no node heard of it: it must not stay stopped for ever."""
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:01:00", "while :; do sleep 0.2; done")
    assert cluster.run("oarhold", "-r", str(job_id)).returncode == 0
    cluster.wait_until(lambda: is_suspended(pid), timeout=5, message="process stopped")
    at = time.time()
    execute(cluster, "UPDATE jobs SET state = 'Resuming' WHERE job_id = :id", id=job_id)
    execute(cluster, "UPDATE job_state_logs SET date_stop = :t WHERE job_id = :id AND date_stop = 0",
            t=at - 10, id=job_id)
    execute(cluster, "INSERT INTO job_state_logs (job_id, job_state, date_start, date_stop) "
            "VALUES (:id, 'Resuming', :t, 0)", id=job_id, t=at - 10)
    cluster.wait_for(job_id, ["Running"], timeout=10)
    assert not is_suspended(pid) and proc_state(pid) != "gone"
    cluster.run("oardel", str(job_id))
    cluster.wait_for(job_id, timeout=10)


# ---------------------------------------------------------------------------------- exit semantics


def test_exit_codes_are_kept_and_both_jobs_terminated(cluster: LocalCluster):
    """OAR3: the exit code is stored (as a wait status), the state is Terminated either way."""
    good = cluster.oarsub("-l", "nodes=1", "exit 0")
    bad = cluster.oarsub("-l", "nodes=1", "exit 3")
    cluster.wait_for([good, bad], timeout=20)
    assert (cluster.job(good)["state"], cluster.job(good)["exit_code"]) == ("Terminated", 0)
    assert (cluster.job(bad)["state"], cluster.job(bad)["exit_code"]) == ("Terminated", 3 << 8)


def test_idempotent_job_exiting_99_at_once_is_not_resubmitted(cluster: LocalCluster):
    """OAR3 NodeChangeState: only a job that ran more than 60 s is resubmitted (else it would loop forever)."""
    first = cluster.oarsub("-t", "idempotent", "-n", "idem", "-l", "nodes=1", "exit 99")
    cluster.wait_for(first, timeout=20)
    assert (cluster.job(first)["state"], cluster.job(first)["exit_code"]) == ("Terminated", 99 << 8)
    time.sleep(1)
    assert cluster.scalar("SELECT count(*) FROM jobs WHERE resubmit_job_id = :id", id=first) == 0
    assert "RESUBMIT_JOB_AUTOMATICALLY" not in cluster.events(first)


def test_a_plain_job_exiting_99_is_not_resubmitted(cluster: LocalCluster):
    job_id = cluster.oarsub("-l", "nodes=1", "exit 99")
    cluster.wait_for(job_id, timeout=20)
    time.sleep(1)
    assert cluster.scalar("SELECT count(*) FROM jobs WHERE resubmit_job_id = :id", id=job_id) == 0


# ---------------------------------------------------------------------------------------- seeing it


def test_oarstat_shows_events_and_state_history(cluster: LocalCluster):
    job_id = cluster.oarsub("--hold", "-l", "nodes=1", "true")
    cluster.run("oardel", str(job_id))
    cluster.wait_for(job_id, timeout=10)
    full = cluster.run("oarstat", "-f", "-j", str(job_id)).stdout
    assert "FRAG_JOB_REQUEST" in full and "state history" in full and "Hold:" in full and "Error:" in full
    events = cluster.run("oarstat", "-e", "-j", str(job_id))
    assert events.returncode == 0 and "FRAG_JOB_REQUEST" in events.stdout and "Hold:" not in events.stdout
    data = json.loads(cluster.run("oarstat", "-J", "-j", str(job_id)).stdout)[str(job_id)]
    assert [e["type"] for e in data["events"]] == ["FRAG_JOB_REQUEST"]
    assert "state_history" not in data  # OAR3's -J has no such key; -f shows the history


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args",
    [
        ("--notify", "fax:123"),
        ("--notify", "mail:"),
        ("--notify", "[NOPE]mail:a@b.org"),
        ("-l", "walltime=0:00:05", "--checkpoint", "5"),
        ("--signal", "SIGNOPE"),
        ("--signal", "99"),
    ],
)
def test_bad_submission_is_refused_in_one_line(cluster: LocalCluster, args: tuple[str, ...]):
    before = job_count(cluster)
    result = cluster.run("oarsub", *args, "true")
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert job_count(cluster) == before


def test_oarhold_r_of_a_job_that_is_not_running_changes_nothing(cluster: LocalCluster):
    job_id = cluster.oarsub("--hold", "-l", "nodes=1", "true")
    result = cluster.run("oarhold", "-r", str(job_id))
    assert result.returncode == 1 and "not running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cluster.state(job_id) == "Hold" and cluster.events(job_id) == []
    cluster.run("oardel", str(job_id))


def test_oardel_of_a_bad_signal_is_refused(cluster: LocalCluster):
    result = cluster.run("oardel", "-s", "NOTASIGNAL", "1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_oardel_s_of_someone_elses_job_is_refused(cluster: LocalCluster, other_user: str):
    job_id, pid = running(cluster, "-l", "nodes=1,walltime=0:01:00", "sleep 60")
    result = run_command_as(cluster, other_user, "oardel", "-s", "SIGSTOP", str(job_id))
    assert result.returncode == 1 and "belongs to root" in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1
    time.sleep(1)
    assert not is_suspended(pid) and proc_state(pid) != "gone" and cluster.events(job_id) == []
    result = run_command_as(cluster, other_user, "oarhold", "-r", str(job_id))
    assert result.returncode == 1 and cluster.state(job_id) == "Running"
    cluster.run("oardel", str(job_id))
    cluster.wait_for(job_id, timeout=10)


@pytest.fixture(scope="module")
def other_user() -> Iterator[str]:
    with throwaway_user() as name:
        yield name


# ------------------------------------------------------------------------------ Leon's extermination


def test_a_job_whose_kill_times_out_is_exterminated(cluster: LocalCluster):
    """Leon's hard timer ran out: ``Error``, resources freed, the node ``Suspected``."""
    job_id, _ = running(cluster, "-l", "nodes=1,walltime=0:00:05", "-p", "network_address = 'node2'", "sleep 60")
    arm_timer(cluster, job_id, time.time() - LEON_HARD - 1)
    cluster.wait_for(job_id, timeout=10)
    assert "EXTERMINATE_JOB" in cluster.events(job_id)
    assert cluster.scalar(
        "SELECT count(*) FROM assigned_resources a JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id "
        "WHERE j.job_id = :id AND a.assigned_resource_index = 'CURRENT'", id=job_id) == 0
    cluster.wait_until(
        lambda: cluster.scalar(
            "SELECT count(*) FROM resource_logs r JOIN resources s ON s.resource_id = r.resource_id "
            "WHERE s.network_address = 'node2' AND r.attribute = 'state' AND r.value = 'Suspected'"),
        timeout=10, message="node2 suspected",
    )


# ------------------------------------------------------------------------------ Sarko's resources


def test_sarko_suspects_expired_resources_and_kills_old_suspected_ones(cluster: LocalCluster):
    ids = [row[0] for row in cluster.query(
        "SELECT resource_id FROM resources WHERE network_address = 'node2' ORDER BY resource_id")]
    expired, old = ids[0], ids[1]
    execute(cluster, "UPDATE resources SET expiry_date = :t WHERE resource_id = :r", t=time.time() - 1, r=expired)
    execute(cluster, "UPDATE resources SET state = 'Suspected', state_since = :t WHERE resource_id = :r",
            t=time.time() - 100, r=old)

    def logged(resource_id: int, value: str) -> bool:
        return bool(cluster.scalar(
            "SELECT count(*) FROM resource_logs WHERE resource_id = :r AND attribute = 'state' AND value = :v",
            r=resource_id, v=value))

    cluster.wait_until(lambda: logged(expired, "Suspected"), timeout=10, message="expired resource suspected")
    cluster.wait_until(lambda: logged(old, "Dead"), timeout=10, message="old suspected resource dead")
    assert cluster.scalar("SELECT state FROM resources WHERE resource_id = :r", r=old) == "Dead"

