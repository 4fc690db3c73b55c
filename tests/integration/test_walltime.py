"""``oarwalltime`` on a real cluster: extra walltime granted when the resources are free, not when a
reservation follows; Sarko and the node honour what was granted; another user is refused.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.users import run_command_as, throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=2, OAR_WALLTIME_CHANGE_ENABLED="yes", OAR_WALLTIME_MAX_INCREASE="3600")


def walltime_of(cluster, job_id: int) -> int:  # type: ignore[no-untyped-def]
    return cluster.scalar("SELECT m.moldable_walltime FROM jobs j JOIN moldable_job_descriptions m "
                          "ON m.moldable_id = j.assigned_moldable_job WHERE j.job_id = :id", id=job_id)


def out(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_extra_walltime_is_granted_when_free_and_honoured_by_sarko_and_the_node(cluster) -> None:  # type: ignore[no-untyped-def]
    job_id = cluster.oarsub("-l", "/core=1,walltime=0:00:15", "sleep 60")
    cluster.wait_for(job_id, ["Running"])
    assert "Accepted" in out(cluster.run("oarwalltime", str(job_id), "+0:10"))
    cluster.wait_until(lambda: walltime_of(cluster, job_id) == 15 + 600, message="walltime granted")
    shown = out(cluster.run("oarwalltime", str(job_id)))
    assert "Current walltime:     0:10:15" in shown and "Already granted:     +0:10:00" in shown
    assert "Pending/unsatisfied: +0:00:00" in shown
    time.sleep(max(0.0, cluster.job(job_id)["start_time"] + 15 + 2 + 4 - time.time()))  # past walltime + grace
    assert cluster.state(job_id) == "Running"
    assert "WALLTIME_CHANGE" in cluster.events(job_id) and "WALLTIME" not in cluster.events(job_id)
    out(cluster.run("oardel", str(job_id)))
    cluster.wait_for(job_id)


def test_extra_walltime_that_would_delay_a_reservation_is_not_granted(cluster) -> None:  # type: ignore[no-untyped-def]
    job_id = cluster.oarsub("-l", "/nodes=2,walltime=0:03:00", "sleep 300")
    cluster.wait_for(job_id, ["Running"])
    end = int(cluster.job(job_id)["start_time"]) + 180
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(end))
    reservation = cluster.oarsub("-r", start, "-l", "/nodes=2,walltime=0:05:00", "true")
    cluster.wait_until(lambda: cluster.scalar("SELECT reservation FROM jobs WHERE job_id = :id",
                                              id=reservation) == "Scheduled", message="reservation accepted")
    assert "Accepted" in out(cluster.run("oarwalltime", str(job_id), "+0:10"))
    time.sleep(2.5)  # many rounds
    assert walltime_of(cluster, job_id) == 180
    shown = out(cluster.run("oarwalltime", str(job_id)))
    assert "Pending/unsatisfied: +0:10:00" in shown and "Already granted:     +0:00:00" in shown
    out(cluster.run("oardel", str(job_id), str(reservation)))
    cluster.wait_for([job_id, reservation])


def submit_as(cluster, user: str, command: str) -> int:  # type: ignore[no-untyped-def]
    """A job of ``user``, as the head takes it from a client with no authd (the user is trusted)."""
    import os
    import uuid

    from oar_celery.client.transport import call
    from oar_celery.config import settings

    saved = dict(os.environ)
    os.environ.update({key: value for key, value in cluster.env.items() if key.startswith("OAR_")})
    settings.cache_clear()
    try:
        request = {"user": user, "command": command, "resources": ["/core=1,walltime=0:05:00"], "directory": "/tmp",
                   "stdout": "/dev/null", "stderr": "/dev/null", "submission_id": uuid.uuid4().hex}
        return int(call("oar.almighty.submit", {"request": request})["job_ids"][0])
    finally:
        os.environ.clear()
        os.environ.update(saved)
        settings.cache_clear()


def test_bad_walltime_requests_are_refused_with_one_line(cluster) -> None:  # type: ignore[no-untyped-def]
    waiting = cluster.oarsub("--hold", "-l", "/core=1", "true")
    refused = cluster.run("oarwalltime", str(waiting), "+0:10")
    assert refused.returncode == 1 and "not running" in refused.stderr
    with throwaway_user() as owner, throwaway_user() as intruder:
        job_id = submit_as(cluster, owner, "sleep 60")
        cluster.wait_for(job_id, ["Running"])
        for args, code, text in ((("+1:xx",), 2, "malformatted"), (("--delay-next-jobs",), 2, "missing"),
                                 (("+2:00",), 1, "more than 1:00:00"),
                                 (("--delay-next-jobs", "+0:10"), 1, "not allowed to delay")):
            result = run_command_as(cluster, owner, "oarwalltime", str(job_id), *args, warm_up=["2147483647"])
            assert result.returncode == code and text in result.stderr, (args, result.stderr[-500:])
            assert len(result.stderr.strip().splitlines()) == 1
        result = run_command_as(cluster, intruder, "oarwalltime", str(job_id), "+0:10")
        assert result.returncode == 1 and "does not belong" in result.stderr, result.stderr[-500:]
        assert cluster.scalar("SELECT count(*) FROM walltime_change WHERE job_id = :id", id=job_id) == 0
        out(run_command_as(cluster, owner, "oarwalltime", str(job_id), "+0:30"))
        assert cluster.scalar("SELECT pending FROM walltime_change WHERE job_id = :id", id=job_id) in (1800, 0)
        out(cluster.run("oardel", str(job_id), str(waiting)))
        cluster.wait_for([job_id, waiting])
