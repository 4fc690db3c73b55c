"""OAR semantics that users' scripts rely on, end to end through the public commands (issue 16).

Each test names the OAR3 behaviour it checks. One cluster (2 nodes x 2
cores) is shared: tests that change it (resource types, queue states) put it
back as they found it.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.cluster import LocalCluster

pytestmark = pytest.mark.cluster


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def test_oar3_exit_status_nonzero_is_terminated_with_wait_status(cluster: LocalCluster) -> None:
    """OAR3 check_end_of_job: a script exiting 3 is Terminated, exit_code 768; oarstat -f shows 768 (3,0,0)."""
    job_id = cluster.oarsub("-l", "/core=1", "echo oops >&2; exit 3")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    assert cluster.job(job_id)["exit_code"] == 768
    full = cluster.run("oarstat", "-f", "-j", str(job_id))
    assert full.returncode == 0, full.stderr
    assert "    exit_code = 768 (3,0,0)" in full.stdout.splitlines()
    assert f"    stdout_file = {cluster.workdir}/OAR.{job_id}.stdout" in full.stdout.splitlines()
    data = json.loads(cluster.run("oarstat", "-J", "-j", str(job_id)).stdout)[str(job_id)]
    assert (data["user"], data["queue_name"], data["exit_code"]) == ("root", "default", 768)


def test_oar3_dependencies_error_ignored_nonzero_exit_blocks(cluster: LocalCluster) -> None:
    """OAR3 kao/scheduling: dependency on Error ignored, on Terminated exit 0 satisfied, else never scheduled."""
    ok = cluster.oarsub("-l", "/core=1", "true")
    failed = cluster.oarsub("-l", "/core=1", "exit 2")
    errored = cluster.oarsub("--hold", "-l", "/core=1", "true")
    assert cluster.run("oardel", str(errored)).returncode == 0
    cluster.wait_for([ok, failed, errored])
    assert cluster.state(errored) == "Error" and cluster.state(failed) == "Terminated"
    after_ok = cluster.oarsub("--after", str(ok), "-l", "/core=1", "true")
    after_error = cluster.oarsub("-a", str(errored), "-l", "/core=1", "true")
    after_failed = cluster.oarsub("--anterior", str(failed), "-l", "/core=1", "true")
    assert cluster.wait_for([after_ok, after_error]) == {after_ok: "Terminated", after_error: "Terminated"}
    message = cluster.wait_until(
        lambda: cluster.scalar("SELECT scheduler_info FROM jobs WHERE job_id = :id", id=after_failed),
        message="a message on the blocked job",
    )
    assert f"dependency with the job {failed}" in message and "exit code 2" in message
    assert cluster.state(after_failed) == "Waiting"
    assert cluster.run("oardel", str(after_failed)).returncode == 0


def test_oar3_idempotent_resubmitted_only_after_60_s(cluster: LocalCluster) -> None:
    """OAR3 NodeChangeState: exit 99 + idempotent resubmits only a job that ran > 60 s, once."""
    quick = cluster.oarsub("-t", "idempotent", "-l", "/core=1", "exit 99")
    assert cluster.wait_for(quick) == {quick: "Terminated"}
    long = cluster.oarsub("-t", "idempotent", "-l", "/core=1", "sleep 2; exit 99")
    cluster.wait_for(long, ["Running"])
    cluster.execute("UPDATE jobs SET start_time = start_time - 120 WHERE job_id = :id", id=long)  # it "ran" 2 min
    cluster.wait_for(long)
    copy = cluster.wait_until(
        lambda: cluster.scalar("SELECT job_id FROM jobs WHERE resubmit_job_id = :id", id=long),
        message="the resubmission",
    )
    assert cluster.scalar("SELECT count(*) FROM jobs WHERE resubmit_job_id = :id", id=quick) == 0
    assert "RESUBMIT_JOB_AUTOMATICALLY" in cluster.events(long)
    cluster.wait_for(copy)  # the copy exits 99 after 2 s: not resubmitted again
    time.sleep(1)
    assert cluster.scalar("SELECT count(*) FROM jobs WHERE resubmit_job_id = :id", id=copy) == 0


def test_oar3_resource_types_default_unless_asked(cluster: LocalCluster) -> None:
    """OAR3 get_data_jobs: a request naming no type only gets type='default' resources; admission counts so."""
    cluster.execute("UPDATE resources SET type = 'token' WHERE resource_id = 4")
    try:
        refused = cluster.run("oarsub", "-l", "/resource_id=4", "true")
        assert refused.returncode != 0 and "not enough resources" in refused.stderr
        token = cluster.oarsub("-p", "type = 'token'", "-l", "/resource_id=1", "true")
        braced = cluster.oarsub("-l", "{type='token'}/resource_id=1", "true")
        plain = [cluster.oarsub("-l", "/resource_id=3", "true") for _ in range(2)]
        cluster.wait_for([token, braced, *plain])
        held = dict(cluster.query(
            "SELECT j.job_id, a.resource_id FROM jobs j JOIN assigned_resources a "
            "ON a.moldable_job_id = j.assigned_moldable_job WHERE j.job_id = ANY(:ids)", ids=[token, braced]))
        assert held == {token: 4, braced: 4}
        used = {r for (r,) in cluster.query(
            "SELECT a.resource_id FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job"
            " WHERE j.job_id = ANY(:ids)", ids=plain)}
        assert 4 not in used
    finally:
        cluster.execute("UPDATE resources SET type = 'default' WHERE resource_id = 4")


def test_oar3_reservations_late_start_besteffort_and_no_command(cluster: LocalCluster) -> None:
    """OAR3 meta_sched: a reservation started late runs what remains; rule 07 refuses besteffort; no command ok."""
    late = cluster.run("oarsub", "-r", stamp(time.time() - 30), "-l", "/core=1,walltime=0:10:00", "sleep 1")
    assert late.returncode == 0, late.stderr
    assert "Reservation valid --> OK" in late.stdout
    late_id = int(late.stdout.split("OAR_JOB_ID=")[1].split()[0])
    cluster.wait_for(late_id, ["Running", "Terminated"])
    walltime = cluster.scalar("SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = :id",
                              id=late_id)
    assert 500 < walltime < 600 and "REDUCE_RESERVATION_WALLTIME" in cluster.events(late_id)
    over = cluster.run("oarsub", "-r", stamp(time.time() - 3600), "-l", "/core=1,walltime=0:10:00", "true")
    assert over.returncode != 0 and "entirely in the past" in over.stderr
    besteffort = cluster.run("oarsub", "-t", "besteffort", "-r", stamp(time.time() + 3600), "true")
    assert besteffort.returncode != 0 and "besteffort" in besteffort.stderr
    bare = cluster.run("oarsub", "-r", stamp(time.time() + 3600), "-l", "/core=1,walltime=0:01:00")
    assert bare.returncode == 0 and "Reservation valid --> OK" in bare.stdout, bare.stderr
    bare_id = int(bare.stdout.split("OAR_JOB_ID=")[1].split()[0])
    assert cluster.run("oardel", str(bare_id)).returncode == 0
    cluster.wait_for([late_id, bare_id], timeout=30)


def test_oar3_timesharing_name_shares_with_a_running_job(cluster: LocalCluster) -> None:
    """OAR docs: timesharing=*,name shares with jobs of that name, running ones included; name,user = user,name."""
    first = cluster.oarsub("-t", "timesharing=*,name", "-n", "shared", "-l", "/nodes=2/core=2", "sleep 6")
    cluster.wait_for(first, ["Running"])
    second = cluster.oarsub("-t", "timesharing=*,name", "-n", "shared", "-l", "/nodes=2/core=2", "sleep 1")
    other = cluster.oarsub("-t", "timesharing=*,name", "-n", "other", "-l", "/nodes=2/core=2", "true")
    swapped = cluster.oarsub("-t", "timesharing=name,user", "-n", "x", "-l", "/core=1", "true")
    cluster.wait_for(second, ["Running", "Terminated"], timeout=5)
    assert cluster.state(first) == "Running" and cluster.state(other) == "Waiting"
    cluster.wait_for([first, second, other, swapped], timeout=40)


def test_oar3_disabled_queue_accepts_and_does_not_schedule(cluster: LocalCluster) -> None:
    """OAR3: a queue that is not Active still takes jobs and starts none; the admin queue is for admins (root)."""
    cluster.execute("UPDATE queues SET state = 'notActive' WHERE queue_name = 'default'")
    try:
        job_id = cluster.oarsub("-l", "/core=1", "true")
        time.sleep(3)
        assert cluster.state(job_id) == "Waiting"
    finally:
        cluster.execute("UPDATE queues SET state = 'Active' WHERE queue_name = 'default'")
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    admin = cluster.oarsub("-q", "admin", "-l", "/core=1", "true")  # root may
    assert cluster.wait_for(admin) == {admin: "Terminated"}


OAR3_VARIABLES = (
    "OAR_JOB_ID", "OAR_JOBID", "OAR_ARRAY_ID", "OAR_ARRAYID", "OAR_ARRAY_INDEX", "OAR_ARRAYINDEX", "OAR_JOB_NAME",
    "OAR_JOB_USER", "OAR_USER", "OAR_PROJECT_NAME", "OAR_NODEFILE", "OAR_NODE_FILE", "OAR_RESOURCE_FILE",
    "OAR_RESOURCE_PROPERTIES_FILE", "OAR_WORKDIR", "OAR_O_WORKDIR", "OAR_JOB_WALLTIME", "OAR_JOB_WALLTIME_SECONDS",
    "OAR_STDOUT", "OAR_STDERR",
)


def test_oar3_job_environment_and_walltime_message(cluster: LocalCluster) -> None:
    """OAR3's job_resource_manager env file: every OAR_* variable; a walltime kill says 'walltime reached'."""
    script = "; ".join(f'echo "{name}=${name}"' for name in OAR3_VARIABLES) + '; cat "$OAR_RESOURCE_PROPERTIES_FILE"'
    job_id = cluster.oarsub("-n", "envjob", "--project", "p1", "-l", "/core=1,walltime=0:05:00", script)
    assert cluster.wait_for(job_id) == {job_id: "Terminated"}
    lines = (cluster.workdir / f"OAR.envjob.{job_id}.stdout").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines[: len(OAR3_VARIABLES)])
    assert all(env[name] for name in OAR3_VARIABLES), env
    assert env["OAR_JOB_ID"] == env["OAR_JOBID"] == env["OAR_ARRAY_ID"] == env["OAR_ARRAYID"] == str(job_id)
    assert (env["OAR_JOB_NAME"], env["OAR_PROJECT_NAME"], env["OAR_JOB_USER"]) == ("envjob", "p1", "root")
    assert (env["OAR_JOB_WALLTIME"], env["OAR_JOB_WALLTIME_SECONDS"]) == ("0:05:00", "300")
    assert env["OAR_RESOURCE_FILE"] == env["OAR_RESOURCE_PROPERTIES_FILE"] != env["OAR_NODEFILE"]
    assert " network_address = 'node" in lines[len(OAR3_VARIABLES)]
    killed = cluster.oarsub("-l", "/core=1,walltime=0:00:02", "sleep 60")
    assert cluster.wait_for(killed, timeout=20) == {killed: "Error"}
    assert "walltime reached" in cluster.job(killed)["message"]


def test_resources_add_twice_does_not_duplicate(cluster: LocalCluster) -> None:
    """Running 'oar-celery resources add' again leaves existing hosts alone (idempotent)."""
    before = cluster.scalar("SELECT count(*) FROM resources")
    again = cluster.admin("resources", "add", "node[1-2]", "--cores", "2")
    assert again.returncode == 0, again.stderr
    assert "already have resources" in again.stdout
    assert cluster.scalar("SELECT count(*) FROM resources") == before


def test_oar3_cli_version_and_bare_h_is_help(cluster: LocalCluster) -> None:
    """OAR3: -V prints 'OAR version : X' on every command; oarsub has --hold and no -h for it."""
    for command in ("oarsub", "oarstat", "oarnodes", "oardel", "oarhold", "oarresume", "oarnodesetting",
                    "oarproperty", "oarremoveresource"):
        result = cluster.run(command, "-V")
        assert result.returncode == 0 and result.stdout.startswith("OAR version : "), command
    before = cluster.scalar("SELECT count(*) FROM jobs")
    helped = cluster.run("oarsub", "-h", "-l", "/core=1", "true")
    assert helped.returncode == 0 and "usage: oarsub" in helped.stdout
    assert cluster.scalar("SELECT count(*) FROM jobs") == before


def test_oar3_admin_options_of_oardel_oarnodesetting_oarproperty(cluster: LocalCluster) -> None:
    """OAR3: oardel -b / --sql / exit 7, oarhold --sql, oarnodesetting --sql / --last-property-value,
    oarproperty -t / -r."""
    running = cluster.oarsub("--project", "semantics-b", "-l", "/core=1", "sleep 30")
    cluster.wait_for(running, ["Running"])
    toggled = cluster.run("oardel", "-b", str(running))
    assert toggled.returncode == 0 and "Add besteffort type" in toggled.stdout, toggled.stderr
    assert "ADD_BESTEFFORT_JOB_TYPE" in cluster.events(running)
    untoggled = cluster.run("oardel", "-b", str(running))  # again: the type goes (else the next job may kill it)
    assert untoggled.returncode == 0 and "Remove besteffort type" in untoggled.stdout, untoggled.stderr
    assert cluster.run("oardel", "999999").returncode == 7  # OAR3: the job does not exist
    held = cluster.oarsub("--hold", "--project", "semantics-sql", "-l", "/core=1", "true")
    assert cluster.run("oarresume", "--sql", "project = 'semantics-sql'").returncode == 0
    assert cluster.wait_for(held) == {held: "Terminated"}
    assert cluster.run("oardel", "--sql", "project = 'nothing-like-this'").returncode == 4
    deleted = cluster.run("oardel", "--sql", "project = 'semantics-b'")
    assert deleted.returncode == 0, deleted.stderr
    assert cluster.wait_for(running) == {running: "Error"}

    last = cluster.run("oarnodesetting", "--last-property-value", "core")
    assert last.returncode == 0 and last.stdout.strip() == str(cluster.scalar("SELECT max(core) FROM resources"))
    setting = cluster.run("oarnodesetting", "--sql", "network_address = 'node2'", "-p", "mem=42")
    assert setting.returncode == 0, setting.stderr
    cluster.wait_until(lambda: cluster.scalar("SELECT count(*) FROM resources WHERE mem = 42") == 2,
                       message="mem set on node2's resources")
    assert cluster.run("oarnodesetting", "--sql", "core = 999", "-s", "Alive").returncode == 12

    assert cluster.run("oarproperty", "-a", "semx").returncode == 0
    renamed = cluster.run("oarproperty", "-r", "semx,semy")
    assert renamed.returncode == 0 and "Rename property semx into semy" in renamed.stdout, renamed.stderr
    listed = cluster.run("oarproperty", "-l", "-t").stdout.splitlines()
    assert "semy (INTEGER)" in listed and not any(line.startswith("semx") for line in listed)
    bad = cluster.run("oarproperty", "-r", "semy")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_oar3_force_terminate_finishing_job(cluster: LocalCluster) -> None:
    """OAR3 oardel --force-terminate-finishing-job: a job left in Finishing (by an OAR head before the switch,
    say) becomes Terminated with OAR's event and frees its cores; a job in any other state is refused (exit 1)."""
    job_id = cluster.oarsub("-l", "/core=1", "sleep 300")
    cluster.wait_for(job_id, ["Running"])
    refused = cluster.run("oardel", "--force-terminate-finishing-job", str(job_id))
    assert refused.returncode != 0 and "is not in the Finishing state" in refused.stderr + refused.stdout
    assert cluster.state(job_id) == "Running"
    cluster.signal_process("node1", signal.SIGSTOP)  # no end report may race the forced end
    cluster.signal_process("node2", signal.SIGSTOP)
    try:
        cluster.execute("UPDATE jobs SET state = 'Finishing' WHERE job_id = :id", id=job_id)
        forced = cluster.run("oardel", "--force-terminate-finishing-job", str(job_id))
        assert forced.returncode == 0, forced.stderr
        assert f"Force the termination of the job = {job_id} ...REGISTERED." in forced.stdout
        assert cluster.state(job_id) == "Terminated"
        assert "FORCE_TERMINATE_FINISHING_JOB" in cluster.events(job_id)
    finally:
        cluster.signal_process("node1", signal.SIGCONT)
        cluster.signal_process("node2", signal.SIGCONT)
    whole = cluster.oarsub("-l", "/nodes=2/core=2", "true")  # every core is free again
    assert cluster.wait_for(whole) == {whole: "Terminated"}
