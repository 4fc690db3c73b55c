"""The fast path from submission to the node stays correct.

Batches (``oar.almighty.submit_many``), arrays, quick rounds between two full
rounds and the Runner's one launch message per node change how many jobs move per statement and per message, never what
happens to each job: every job is inserted once with its details, launched
once (one ``Launching`` in its state log, one job directory on one node), and
no resource ever holds two running jobs. Times are measured by ``bench/``,
never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

_SUBMIT_MANY = """
import json, sys
from oar_celery.client import api
requests = json.loads(sys.stdin.read())
print(json.dumps([r if isinstance(r, list) else {"error": str(r)} for r in api.submit_many(requests)]))
"""


def submit_many(cluster, requests: list[dict]) -> list:  # type: ignore[no-untyped-def]
    """Submit through the client API in a process of the cluster's environment."""
    done = subprocess.run(
        [sys.executable, "-c", _SUBMIT_MANY], input=json.dumps(requests), env=cluster.env,
        cwd=cluster.workdir, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def request(cluster, command: str = "true", **extra: object) -> dict:  # type: ignore[no-untyped-def]
    return {"command": command, "resources": ["/resource_id=1"], "directory": str(cluster.workdir), **extra}


def launched_once(cluster, job_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """One ``Launching`` entry per job, and one job directory on all nodes.

    (``Running`` may be missing: a short job's end report can overtake its
    start report, and ``Launching`` → ``Terminated`` is then the right move.)
    """
    rows = cluster.query(
        "SELECT job_id, count(*) FROM job_state_logs WHERE job_id = ANY(:ids)"
        " AND job_state = 'Launching' GROUP BY job_id",
        ids=job_ids,
    )
    counts = dict(rows)
    for job_id in job_ids:
        assert counts.get(job_id) == 1, f"job {job_id} launched {counts.get(job_id)} times"
    directories: dict[int, int] = defaultdict(int)
    for path in Path(cluster.state_dir, "nodes").glob("*/jobs/*"):
        if path.name.isdigit():
            directories[int(path.name)] += 1
    assert all(directories.get(job_id) == 1 for job_id in job_ids), "a job was claimed on several nodes"


def no_shared_resource(cluster, job_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """On every resource, each job was launched after the previous one had stopped."""
    rows = cluster.query(
        "SELECT a.resource_id, j.job_id, l.date_start, j.stop_time FROM jobs j"
        " JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job"
        " JOIN job_state_logs l ON l.job_id = j.job_id AND l.job_state = 'Launching'"
        " WHERE j.job_id = ANY(:ids) ORDER BY a.resource_id, l.date_start",
        ids=job_ids,
    )
    by_resource: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
    for resource_id, job_id, start, stop in rows:
        by_resource[resource_id].append((job_id, start, stop))
    assert sum(len(v) for v in by_resource.values()) == len(job_ids)
    for resource_id, runs in by_resource.items():
        for (before, _, stopped), (after, started, _) in zip(runs, runs[1:], strict=False):
            assert started >= stopped, f"jobs {before} and {after} shared resource {resource_id}"


@pytest.fixture(scope="module")
def fast_cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=2)


def test_a_batch_of_200_runs_each_job_exactly_once(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    answers = submit_many(fast_cluster, [request(fast_cluster) for _ in range(200)])
    assert all(isinstance(a, list) and len(a) == 1 for a in answers), answers[:3]
    job_ids = [a[0] for a in answers]
    assert len(set(job_ids)) == 200
    states = fast_cluster.wait_for(job_ids, timeout=280)
    assert set(states.values()) == {"Terminated"}
    launched_once(fast_cluster, job_ids)
    no_shared_resource(fast_cluster, job_ids)
    assert "quick_scheduler" in cycle_modules(fast_cluster), "freed cores waited for full rounds only"


def cycle_modules(cluster) -> set[str]:  # type: ignore[no-untyped-def]
    """The modules Almighty's recorded cycles ran."""
    import redis

    entries = redis.Redis.from_url(cluster.env["OAR_BROKER_URL"]).lrange("oar:almighty:cycles", 0, -1)
    return {module for raw in entries for module in json.loads(raw)["modules"]}


def test_a_batch_keeps_each_jobs_details(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    answers = submit_many(fast_cluster, [
        request(fast_cluster, "exit 0", name="first", types=["besteffort"], hold=True),
        request(fast_cluster, "exit 0", resources=["/nodes=1/core=2,walltime=0:10:00"], project="p2"),
    ])
    first, second = answers[0][0], answers[1][0]
    assert fast_cluster.job(first)["state"] == "Hold"
    assert fast_cluster.job(first)["job_name"] == "first"
    assert fast_cluster.job(first)["array_id"] == first
    assert fast_cluster.scalar("SELECT type FROM job_types WHERE job_id = :id", id=first) == "besteffort"
    levels = fast_cluster.query(
        "SELECT m.moldable_walltime, d.res_job_resource_type, d.res_job_value, d.res_job_order"
        " FROM moldable_job_descriptions m JOIN job_resource_groups g ON g.res_group_moldable_id = m.moldable_id"
        " JOIN job_resource_descriptions d ON d.res_job_group_id = g.res_group_id"
        " WHERE m.moldable_job_id = :id ORDER BY d.res_job_order",
        id=second,
    )
    assert [tuple(row) for row in levels] == [(600, "network_address", 1, 0), (600, "core", 2, 1)]
    assert fast_cluster.job(second)["project"] == "p2"
    fast_cluster.run("oardel", str(first))
    assert fast_cluster.wait_for([second]) == {second: "Terminated"}


def test_a_refused_request_does_not_stop_its_batch(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    before = fast_cluster.scalar("SELECT count(*) FROM jobs")
    answers = submit_many(fast_cluster, [
        request(fast_cluster), request(fast_cluster, queue="nosuchqueue"), request(fast_cluster, command=""),
        request(fast_cluster),
    ])
    assert isinstance(answers[0], list) and isinstance(answers[3], list)
    assert "nosuchqueue" in answers[1]["error"]
    assert "error" in answers[2]
    assert fast_cluster.scalar("SELECT count(*) FROM jobs") == before + 2
    assert set(fast_cluster.wait_for([answers[0][0], answers[3][0]]).values()) == {"Terminated"}


def test_an_array_is_inserted_in_bulk_and_runs_once(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    result = fast_cluster.run("oarsub", "--array", "30", "-l", "/resource_id=1", "true")
    assert result.returncode == 0, result.stderr
    job_ids = [int(line.split("=")[1]) for line in result.stdout.splitlines() if line.startswith("OAR_JOB_ID=")]
    assert len(job_ids) == 30 and f"OAR_ARRAY_ID={job_ids[0]}" in result.stdout
    rows = fast_cluster.query(
        "SELECT array_id, array_index FROM jobs WHERE job_id = ANY(:ids) ORDER BY job_id", ids=job_ids
    )
    assert [tuple(row) for row in rows] == [(job_ids[0], index) for index in range(1, 31)]
    assert set(fast_cluster.wait_for(job_ids, timeout=120).values()) == {"Terminated"}
    launched_once(fast_cluster, job_ids)
    no_shared_resource(fast_cluster, job_ids)


def test_commands_answer_without_celery_on_the_client(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    """oarsub talks to the head over a socket alone: neither Celery nor redis-py is imported on its path."""
    probe = (
        "import sys\nfrom oar_celery.cli import oarsub\ncode = oarsub.main(['-l', '/resource_id=1', 'true'])\n"
        "assert not {'celery', 'sqlalchemy', 'redis'} & set(sys.modules), 'heavy import'\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=fast_cluster.env, cwd=fast_cluster.workdir,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.split("=")[1])
    assert fast_cluster.wait_for([job_id]) == {job_id: "Terminated"}


_SEND_REPORTS = """
import json, sys
from oar_celery.celery_app import app
from oar_celery.node.reports import signed
kwargs = signed("oar.head.reports", {"reports": json.loads(sys.stdin.read())})
app.send_task("oar.head.reports", kwargs=kwargs, queue="oar.head")
"""


def send_reports(cluster, reports: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Send one ``oar.head.reports`` batch, as a node's report sender does: each report signed by its host."""
    done = subprocess.run(
        [sys.executable, "-c", _SEND_REPORTS], input=json.dumps(reports), env=cluster.env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr


def history(cluster, job_ids: list[int]) -> list[tuple]:  # type: ignore[no-untyped-def]
    """What a report could change: each job's state, exit code, stop time, state logs, events, resources."""
    return [tuple(row) for row in cluster.query(
        "SELECT j.job_id, j.state, j.exit_code, j.stop_time, j.message,"
        " (SELECT count(*) FROM job_state_logs l WHERE l.job_id = j.job_id),"
        " (SELECT count(*) FROM event_logs e WHERE e.job_id = j.job_id),"
        " (SELECT count(*) FROM assigned_resources a WHERE a.moldable_job_id = j.assigned_moldable_job"
        "  AND a.assigned_resource_index = 'CURRENT')"
        " FROM jobs j WHERE j.job_id = ANY(:ids) ORDER BY j.job_id",
        ids=job_ids,
    )]


def test_a_re_sent_batch_changes_nothing(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    answers = submit_many(fast_cluster, [request(fast_cluster, f"exit {code}") for code in (0, 0, 3)])
    job_ids = [a[0] for a in answers]
    states = fast_cluster.wait_for(job_ids, timeout=60)
    assert [states[job_id] for job_id in job_ids] == ["Terminated", "Terminated", "Terminated"]  # OAR3: exit 3 too
    before = history(fast_cluster, job_ids)
    host = fast_cluster.query(
        "SELECT r.network_address FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job"
        " JOIN resources r ON r.resource_id = a.resource_id WHERE j.job_id = :id", id=job_ids[0],
    )[0][0]
    batch = [
        {"kind": "ended", "job_id": job_ids[0], "host": host, "exit_code": 7, "reason": "exited", "message": "late"},
        {"kind": "ended", "job_id": job_ids[2], "host": host, "exit_code": 0, "reason": "exited", "message": ""},
        {"kind": "ended", "job_id": job_ids[1], "host": host, "exit_code": None, "reason": "launch_error",
         "message": "again"},
    ]
    send_reports(fast_cluster, batch)
    send_reports(fast_cluster, batch)
    marker = submit_many(fast_cluster, [request(fast_cluster)])[0][0]  # the head has read the batches by then
    assert fast_cluster.wait_for([marker], timeout=60) == {marker: "Terminated"}
    assert history(fast_cluster, job_ids) == before


def test_one_batch_ends_each_job_with_its_own_outcome(fast_cluster) -> None:  # type: ignore[no-untyped-def]
    answers = submit_many(fast_cluster, [request(fast_cluster, "sleep 8") for _ in range(3)])
    job_ids = [a[0] for a in answers]
    fast_cluster.wait_until(
        lambda: {fast_cluster.state(job_id) for job_id in job_ids} == {"Running"}, timeout=60, message="running"
    )
    host = dict(fast_cluster.query(
        "SELECT j.job_id, r.network_address FROM jobs j JOIN assigned_resources a"
        " ON a.moldable_job_id = j.assigned_moldable_job JOIN resources r ON r.resource_id = a.resource_id"
        " WHERE j.job_id = ANY(:ids)", ids=job_ids,
    ))
    first, second, third = job_ids
    batch = [
        {"kind": "ended", "job_id": first, "host": host[first], "exit_code": 0, "reason": "exited", "message": ""},
        {"kind": "ended", "job_id": second, "host": host[second], "exit_code": 3, "reason": "exited",
         "message": "three"},
        {"kind": "ended", "job_id": third, "host": host[third], "exit_code": None, "reason": "killed", "message": ""},
        {"kind": "running", "job_id": first, "host": host[first], "pid": 1},
    ]
    send_reports(fast_cluster, batch)
    states = fast_cluster.wait_for(job_ids, timeout=60)
    assert [states[job_id] for job_id in job_ids] == ["Terminated", "Terminated", "Error"]  # OAR3: only the kill
    rows = history(fast_cluster, job_ids)
    assert [row[2] for row in rows[:2]] == [0, 768]  # wait statuses, as OAR stores them
    assert rows[1][4] == "three" and rows[2][4] == "the job was killed"
    assert all(row[7] == 0 for row in rows), "resources not released"
