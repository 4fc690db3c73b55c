"""The meta-scheduler end to end, on a real cluster driven through OAR's commands.

One cluster of 2 nodes x 2 cores (4 resources, no security time) serves the
whole module; each test leaves it empty (its jobs ended or deleted) so that
the next one starts from a free Gantt.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import LocalCluster, command_path

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]



@pytest.fixture(scope="module")
def oar(cluster_factory) -> LocalCluster:  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=2)


@pytest.fixture(autouse=True)
def empty_cluster(oar: LocalCluster):  # type: ignore[no-untyped-def]
    """Every test leaves no job behind it, whatever happened."""
    yield
    oar.end_active_jobs()


def date_text(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def hosts_of(oar: LocalCluster, job_id: int) -> set[str]:
    rows = oar.query(
        "SELECT DISTINCT r.network_address FROM jobs j "
        "JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job "
        "JOIN resources r ON r.resource_id = a.resource_id WHERE j.job_id = :id",
        id=job_id,
    )
    return {row[0] for row in rows}


def oarstat_json(oar: LocalCluster, *args: str) -> dict[str, dict]:  # type: ignore[type-arg]
    result = oar.run("oarstat", "-J", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def submit_reservation(oar: LocalCluster, start: float, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [command_path("oarsub"), "-r", date_text(start), *args],
        env=oar.env, cwd=oar.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# ------------------------------------------------------------------------------ reservations


def test_reservation_is_granted_and_starts_on_time(oar: LocalCluster) -> None:
    start = int(time.time()) + 6
    client = submit_reservation(oar, start, "-l", "/nodes=2,walltime=0:00:30", "sleep 1")
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, out + err
    assert "Reservation valid --> OK" in out
    assert f"Reservation start: {date_text(start)}" in out
    job_id = int(out.split("OAR_JOB_ID=")[1].split()[0])
    # Before its time the reservation holds its window: a job needing the whole cluster
    # for longer than the gap is predicted after it, and oarstat shows it.
    blocked = oar.oarsub("-l", "/nodes=2,walltime=0:01:00", "true")
    prediction = oar.wait_until(lambda: oarstat_json(oar, "-j", str(blocked))[str(blocked)]["scheduled_start"])
    assert prediction >= start + 30
    assert oar.state(job_id) == "Waiting"
    oar.wait_for(job_id, ["Running", "Terminated"], timeout=30)
    started = oar.job(job_id)["start_time"]
    assert start <= started <= start + 5
    assert oar.wait_for(job_id)[job_id] == "Terminated"
    oar.run("oardel", str(blocked))


def test_reservations_past_or_impossible_are_refused(oar: LocalCluster) -> None:
    # OAR3: refused only when entirely over (start + walltime in the past)
    past = oar.run("oarsub", "-r", date_text(time.time() - 3600), "-l", "/nodes=1,walltime=0:10:00", "true")
    assert past.returncode != 0 and "past" in past.stderr
    assert len(past.stderr.strip().splitlines()) == 1
    start = int(time.time()) + 3600
    first = submit_reservation(oar, start, "-l", "/nodes=2,walltime=0:10:00", "true")
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, out + err
    second = submit_reservation(oar, start + 60, "-l", "/nodes=1,walltime=0:10:00", "true")
    out2, err2 = second.communicate(timeout=30)
    assert second.returncode != 0
    assert "Reservation not valid --> KO" in out2 and "window" in err2
    refused = int(out2.split("OAR_JOB_ID=")[1].split()[0])
    assert oar.state(refused) == "Error"


def test_reservation_whose_client_is_gone_is_fragged(oar: LocalCluster) -> None:
    """The client dies before the answer: Runner cannot tell it, so the job never starts."""
    script = (
        "from oar_celery.client import api;"
        f"print(api.submit({{'command': 'true', 'directory': {str(oar.workdir)!r}, "
        f"'resources': ['/nodes=1,walltime=0:00:30'], 'reservation': {date_text(time.time() + 20)!r}}})[0])"
    )
    result = subprocess.run([sys.executable, "-c", script], env=oar.env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout.strip())
    assert oar.wait_for(job_id, timeout=40)[job_id] == "Error"
    assert "CANNOT_NOTIFY_OARSUB" in oar.events(job_id)
    assert oar.job(job_id)["start_time"] == 0 or oar.scalar(
        "SELECT count(*) FROM job_state_logs WHERE job_id = :id AND job_state = 'Running'", id=job_id
    ) == 0


# ------------------------------------------------------------------------------------ arrays


def test_array_of_five_sees_its_ids(oar: LocalCluster) -> None:
    out = oar.run("oarsub", "--array", "5", "-l", "/resource_id=1",
                  'echo "$OAR_ARRAY_ID $OAR_ARRAY_INDEX" > array.$OAR_JOB_ID')
    assert out.returncode == 0, out.stderr
    ids = [int(line.split("=")[1]) for line in out.stdout.split() if line.startswith("OAR_JOB_ID=")]
    array_id = int(out.stdout.split("OAR_ARRAY_ID=")[1].split()[0])
    assert len(ids) == 5 and array_id == ids[0]
    assert set(oar.wait_for(ids).values()) == {"Terminated"}
    seen = sorted((oar.workdir / f"array.{job_id}").read_text().split() for job_id in ids)
    assert seen == [[str(array_id), str(index)] for index in range(1, 6)]
    listed = oarstat_json(oar, "--array", str(array_id))
    assert sorted(int(key) for key in listed) == ids
    assert {job["array_index"] for job in listed.values()} == {1, 2, 3, 4, 5}


def test_array_param_file_and_oardel_array(oar: LocalCluster) -> None:
    params = oar.workdir / "params"
    params.write_text("60\n# comment\n61\n62\n")
    out = oar.run("oarsub", "--array-param-file", str(params), "-l", "/nodes=2,walltime=0:05:00", "sleep")
    assert out.returncode == 0, out.stderr
    ids = [int(line.split("=")[1]) for line in out.stdout.split() if line.startswith("OAR_JOB_ID=")]
    assert [oar.job(i)["command"] for i in ids] == ["sleep 60", "sleep 61", "sleep 62"]
    oar.wait_for(ids[0], ["Running"])
    deleted = oar.run("oardel", "--array", str(ids[0]))
    assert deleted.returncode == 0, deleted.stderr
    assert set(oar.wait_for(ids).values()) == {"Error"}


# -------------------------------------------------------------------------------- besteffort


def test_besteffort_job_is_killed_by_a_normal_job_and_resubmitted(oar: LocalCluster) -> None:
    besteffort = oar.oarsub("-t", "besteffort", "-t", "idempotent", "-l", "/nodes=2,walltime=0:10:00", "sleep 300")
    oar.wait_for(besteffort, ["Running"])
    assert oar.job(besteffort)["queue_name"] == "besteffort"
    normal = oar.oarsub("-l", "/nodes=1,walltime=0:01:00", "true")
    assert oar.wait_for(normal, timeout=40)[normal] == "Terminated"
    assert oar.wait_for(besteffort)[besteffort] == "Error"
    assert "BESTEFFORT_KILL" in oar.events(besteffort)
    # it was still running, or being killed, when the normal job started: never both at once
    assert oar.job(normal)["start_time"] >= oar.job(besteffort)["stop_time"] - 1
    again = oar.wait_until(lambda: oar.scalar("SELECT job_id FROM jobs WHERE resubmit_job_id = :id", id=besteffort))
    assert oar.job(again)["queue_name"] == "besteffort"


# ------------------------------------------------------------------------------ dependencies


def test_dependency_chain_and_failed_dependency(oar: LocalCluster) -> None:
    first = oar.oarsub("-l", "/resource_id=1", "sleep 2")
    second = oar.oarsub("-a", str(first), "-l", "/resource_id=1", "sleep 1")
    third = oar.oarsub("-a", str(second), "-l", "/resource_id=1", "true")
    assert set(oar.wait_for([first, second, third]).values()) == {"Terminated"}
    jobs = [oar.job(j) for j in (first, second, third)]
    assert jobs[1]["start_time"] >= jobs[0]["stop_time"]
    assert jobs[2]["start_time"] >= jobs[1]["stop_time"]
    # OAR3: a required job Terminated with a non-zero exit code blocks its dependent for good
    failing = oar.oarsub("-l", "/resource_id=1", "exit 3")
    dependent = oar.oarsub("-a", str(failing), "-l", "/resource_id=1", "true")
    assert oar.wait_for(failing)[failing] == "Terminated"
    message = f"Cannot determine scheduling time due to dependency with the job {failing}"
    oar.wait_until(lambda: (oar.job(dependent)["scheduler_info"] or "").startswith(message))
    assert oar.state(dependent) == "Waiting"
    assert message in oar.run("oarstat", "-f", "-j", str(dependent)).stdout
    missing = oar.run("oarsub", "-a", "999999", "true")
    assert missing.returncode != 0 and "999999" in missing.stderr


# ------------------------------------------------------------------- properties and requests


def test_oarproperty_and_property_filters(oar: LocalCluster) -> None:
    for args in (("-a", "gpu", "-c"), ("-a", "ib_rate")):
        added = oar.run("oarproperty", *args)
        assert added.returncode == 0 and "Added property" in added.stdout, added.stderr
    listed = oar.run("oarproperty", "-l").stdout.split()
    assert {"gpu", "ib_rate", "mem", "host"} <= set(listed)
    for bad in ("resource_id", "state", "1abc", "a;drop", "and"):
        refused = oar.run("oarproperty", "-a", bad)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, bad
    assert oar.run("oarproperty", "-a", "gpu").returncode != 0
    setting = oar.run("oarnodesetting", "-h", "node2", "-p", "gpu=YES", "-p", "ib_rate=100")
    assert setting.returncode == 0, setting.stderr
    by_filter = oar.oarsub("-p", "ib_rate >= 50", "-l", "/resource_id=1", "true")
    by_group = oar.oarsub("-l", "{gpu = 'YES'}/nodes=1", "true")
    assert set(oar.wait_for([by_filter, by_group]).values()) == {"Terminated"}
    assert hosts_of(oar, by_filter) == hosts_of(oar, by_group) == {"node2"}
    before = oar.scalar("SELECT count(*) FROM jobs")
    for bad in ("nosuch > 1", "1=1; DROP TABLE jobs", "gpu = (SELECT 1)", "lower(gpu) = 'yes'"):
        refused = oar.run("oarsub", "-p", bad, "true")
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, bad
    assert oar.run("oarsub", "-l", "{nosuch = 1}/nodes=1", "true").returncode != 0
    assert oar.scalar("SELECT count(*) FROM jobs") == before
    deleted = oar.run("oarproperty", "-d", "gpu")
    assert deleted.returncode == 0, deleted.stderr
    assert "gpu" not in oar.run("oarproperty", "-l").stdout.split()
    assert oar.run("oarproperty", "-d", "mem").returncode != 0


def test_requests_types_and_moldables(oar: LocalCluster) -> None:
    never = oar.run("oarsub", "-l", "/nodes=3", "true")
    assert never.returncode != 0 and "There are not enough resources for your request" in never.stderr
    unknown = oar.run("oarsub", "-t", "deploy-me", "true")
    assert unknown.returncode != 0 and "deploy-me" in unknown.stderr
    # two timesharing jobs share the whole cluster at once
    shared = [oar.oarsub("-t", "timesharing=*,*", "-l", "/nodes=2,walltime=0:01:00", "sleep 3") for _ in range(2)]
    oar.wait_for(shared, ["Running"], timeout=30)
    assert set(oar.wait_for(shared).values()) == {"Terminated"}
    # moldable: node1 is busy for a minute, so the one-node alternative finishes first
    busy = oar.oarsub("-l", "/nodes=1,walltime=0:01:00", "sleep 60")
    oar.wait_for(busy, ["Running"])
    moldable = oar.oarsub("-l", "/nodes=2,walltime=0:10:00", "-l", "/nodes=1,walltime=0:00:30", "true")
    assert oar.wait_for(moldable)[moldable] == "Terminated"
    assert len(hosts_of(oar, moldable)) == 1 and hosts_of(oar, moldable) != hosts_of(oar, busy)


def test_predictions_and_hold(oar: LocalCluster) -> None:
    running = oar.oarsub("-l", "/nodes=2,walltime=0:01:00", "sleep 60")
    oar.wait_for(running, ["Running"])
    first = oar.oarsub("-l", "/nodes=2,walltime=0:05:00", "true")
    second = oar.oarsub("-l", "/nodes=2,walltime=0:05:00", "true")

    def starts() -> dict[int, float]:
        jobs = oarstat_json(oar, "-j", str(first), "-j", str(second))
        return {int(k): v["scheduled_start"] for k, v in jobs.items()}

    predicted = oar.wait_until(lambda: all(starts().values()) and starts())
    assert predicted[second] >= predicted[first] + 300
    full = oar.run("oarstat", "-f", "-j", str(first)).stdout
    assert "    scheduled_start = " in full
    assert oar.run("oarhold", str(first)).returncode == 0
    # a held job holds no place: the second one moves up to the first one's slot
    oar.wait_until(lambda: starts()[first] is None and starts()[second] <= predicted[first] + 1)
    assert oar.run("oarresume", str(first)).returncode == 0
    oar.wait_until(lambda: starts()[first] is not None and starts()[second] >= starts()[first] + 300)
    oar.run("oardel", str(running), str(first), str(second))


def test_oarproperty_is_an_installed_command() -> None:
    assert Path(command_path("oarproperty")).exists()
