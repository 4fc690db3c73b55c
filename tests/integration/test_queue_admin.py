"""``oarqueue``, ``oarnotify``, ``oaraccounting`` and ``oarstat --accounting`` on a real cluster.

One cluster for the module: queues are disabled and enabled while jobs wait,
created, changed and removed; another Unix user is refused every change; the
accounting table holds what the finished jobs used, as ``oarstat`` prints it.
"""

from __future__ import annotations

import getpass
import time

import pytest

from tests.integration.users import run_command_as, throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def queue_state(cluster, name: str) -> str | None:  # type: ignore[no-untyped-def]
    return cluster.scalar("SELECT state FROM queues WHERE queue_name = :q", q=name)


def test_a_disabled_queue_keeps_its_jobs_waiting_until_enabled(cluster) -> None:  # type: ignore[no-untyped-def]
    job_id = cluster.oarsub("--hold", "-l", "/core=1", "true")
    lines(cluster.run("oarqueue", "-d", "default"))
    assert queue_state(cluster, "default") == "notActive"
    later = cluster.oarsub("-l", "/core=1", "true")  # OAR3: a disabled queue still takes jobs
    lines(cluster.run("oarresume", str(job_id)))
    time.sleep(2.5)  # several rounds
    assert cluster.state(job_id) == cluster.state(later) == "Waiting"
    lines(cluster.run("oarqueue", "-e", "default"))
    assert cluster.wait_for([job_id, later], timeout=30) == {job_id: "Terminated", later: "Terminated"}


def test_disable_all_then_enable_all_with_oarnotify(cluster) -> None:  # type: ignore[no-untyped-def]
    job_id = cluster.oarsub("--hold", "-l", "/core=1", "true")
    lines(cluster.run("oarnotify", "-D"))
    assert {s for (s,) in cluster.query("SELECT state FROM queues")} == {"notActive"}
    lines(cluster.run("oarresume", str(job_id)))
    time.sleep(2)
    assert cluster.state(job_id) == "Waiting"
    lines(cluster.run("oarnotify", "-E"))
    lines(cluster.run("oarnotify", "Scheduling"))
    assert cluster.wait_for(job_id, timeout=30) == {job_id: "Terminated"}


def test_queues_are_added_listed_changed_and_removed(cluster) -> None:  # type: ignore[no-untyped-def]
    lines(cluster.run("oarqueue", "--add", "night,5,fifo"))
    listing = lines(cluster.run("oarqueue", "-l"))
    at = listing.index("night")
    assert listing[at + 1:at + 4] == ["priority = 5", "policy = fifo", "state = Active"]
    lines(cluster.run("oarqueue", "--change", "night,7,"))
    assert cluster.query("SELECT priority, scheduler_policy FROM queues WHERE queue_name = 'night'") == [(7, "fifo")]
    held = cluster.oarsub("-q", "night", "--hold", "-l", "/core=1", "true")
    refused = cluster.run("oarqueue", "--remove", "night")
    assert refused.returncode == 1 and "unfinished" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    lines(cluster.run("oardel", str(held)))
    cluster.wait_for(held)
    lines(cluster.run("oarqueue", "--remove", "night"))
    assert queue_state(cluster, "night") is None


def test_bad_queue_requests_get_one_line_and_change_nothing(cluster) -> None:  # type: ignore[no-untyped-def]
    before = cluster.query("SELECT * FROM queues ORDER BY queue_name")
    for args, code in ((("--add", "q1,high,fifo"), 2), (("--add", "default,3,fifo"), 1), (("-e", "nosuch"), 1),
                       (("-e", "default", "-d", "admin"), 2), (("--add", "bad name,1,fifo"), 1)):
        result = cluster.run("oarqueue", *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    unknown = cluster.run("oarnotify", "NoSuchTag")
    assert unknown.returncode == 1 and "unknown tag" in unknown.stderr
    assert cluster.query("SELECT * FROM queues ORDER BY queue_name") == before


def test_another_user_may_not_change_queues_notify_or_reset_the_accounting(cluster) -> None:  # type: ignore[no-untyped-def]
    job_id = cluster.oarsub("-l", "/core=1", "sleep 1")
    cluster.wait_for(job_id)
    accounted = cluster.query("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6")
    assert accounted
    with throwaway_user() as intruder:
        for command, args in (("oarqueue", ("-d", "default")), ("oarqueue", ("--remove", "default")),
                              ("oarnotify", ("-D",)), ("oarnotify", ("Term",)),
                              ("oaraccounting", ("--delete-before", "0")), ("oarqueue", ("-e", "admin"))):
            result = run_command_as(cluster, intruder, command, *args)
            assert result.returncode == 1, (command, args, result.stdout, result.stderr[-1500:])
            assert "only root or" in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
                command, args, result.stderr[-2000:])
    assert queue_state(cluster, "default") == "Active" and queue_state(cluster, "admin") == "Active"
    assert cluster.query("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6") == accounted


def test_accounting_holds_the_finished_jobs_and_oarstat_prints_it(cluster) -> None:  # type: ignore[no-untyped-def]
    ids = [cluster.oarsub("-l", "/core=2,walltime=0:10:00", "sleep 1") for _ in range(2)]
    cluster.wait_for(ids)
    used = cluster.scalar("SELECT sum(consumption) FROM accounting WHERE consumption_type = 'USED'")
    expected = cluster.scalar(
        "SELECT sum(floor(j.stop_time) - floor(j.start_time)) FROM jobs j, LATERAL (SELECT count(*) AS n "
        "FROM assigned_resources a WHERE a.moldable_job_id = j.assigned_moldable_job) r "
        "WHERE j.state IN ('Terminated', 'Error') AND j.start_time > 0 AND r.n > 0"
    )
    per_core = cluster.scalar(
        "SELECT sum((floor(j.stop_time) - floor(j.start_time)) * (SELECT count(*) FROM assigned_resources a "
        "WHERE a.moldable_job_id = j.assigned_moldable_job)) FROM jobs j "
        "WHERE j.state IN ('Terminated', 'Error') AND j.start_time > 0"
    )
    assert expected is not None and int(used) == int(per_core)
    me = getpass.getuser()
    today = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    tomorrow = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    table = lines(cluster.run("oarstat", "--accounting", f"{today}, {tomorrow}"))
    assert table[0].split()[:2] == ["User", "First"] and any(line.startswith(me + " ") for line in table[2:])
    mine = "\n".join(lines(cluster.run("oarstat", "-u", me, "--accounting", f"{today}, {tomorrow}")))
    assert f"Usage summary for user {me}" in mine and f"Used consumption: {int(used):>10}" in mine
    bad = cluster.run("oarstat", "--accounting", "yesterday")
    assert bad.returncode == 2 and "--accounting" in bad.stderr
    before = cluster.query("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6")
    lines(cluster.run("oaraccounting", "--reinitialize"))
    assert cluster.scalar("SELECT count(*) FROM accounting") == 0
    assert "job(s) accounted" in lines(cluster.run("oaraccounting"))[0]
    assert cluster.query("SELECT * FROM accounting ORDER BY 1, 2, 3, 4, 5, 6") == before
