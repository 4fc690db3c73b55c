"""Job types, job scripts and admission rules end to end, through OAR's commands on a real cluster.

One cluster of 3 nodes x 2 cores for the module (no security time): node3 is
the cosystem host, the cluster has one ``licence`` token, and a site module of
admission rules is configured. Each test leaves no job behind.
"""

from __future__ import annotations

import datetime
import textwrap
import time
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from tests.integration.users import run_command_as, throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def oar(cluster_factory) -> LocalCluster:  # type: ignore[no-untyped-def]
    return cluster_factory(
        nodes=3, cores=2, OAR_COSYSTEM_HOSTNAME="node3", OAR_DEPLOY_HOSTNAME="node2", OAR_TOKENS="licence=1",
        OAR_ADMISSION_RULES="tests.site_rules", OAR_QUEUE_MAX_WALLTIME="default=10:00:00", PYTHONPATH=str(ROOT),
    )


@pytest.fixture(autouse=True)
def empty_cluster(oar: LocalCluster):  # type: ignore[no-untyped-def]
    yield
    oar.end_active_jobs()


def resources_of(oar: LocalCluster, job_id: int) -> set[int]:
    rows = oar.query(
        "SELECT a.resource_id FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job "
        "WHERE j.job_id = :id", id=job_id,
    )
    return {row[0] for row in rows}


def types_of(oar: LocalCluster, job_id: int) -> set[str]:
    return {row[0] for row in oar.query("SELECT type FROM job_types WHERE job_id = :id", id=job_id)}


def pinged_jobs(oar: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The started jobs Finaud asks each node about, with the cluster's settings."""
    from oar_celery.config import settings
    from oar_celery.db.session import session_scope
    from oar_celery.head import finaud

    for key, value in oar.env.items():
        if key.startswith("OAR_"):
            monkeypatch.setenv(key, value)
    settings.cache_clear()
    try:
        with session_scope(oar.env["OAR_DATABASE_URL"]) as session:
            return finaud._jobs_by_first_host(session)
    finally:
        settings.cache_clear()


def refused(oar: LocalCluster, *args: str) -> str:
    """oarsub's one error line; the test fails if a job was stored."""
    before = oar.scalar("SELECT count(*) FROM jobs")
    result = oar.run("oarsub", *args)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert oar.scalar("SELECT count(*) FROM jobs") == before
    return lines[0]


# ---------------------------------------------------------------------------------- oarsub -S


def test_a_job_script_carries_its_options(oar: LocalCluster) -> None:
    script = oar.workdir / "job.sh"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        #OAR -l /nodes=1/core=2,walltime=0:05:00
        #OAR -n scripted
        #OAR -O script.%jobid%.out
        #OAR -t idempotent
        #OAR --project physics
        wc -l < "$OAR_NODEFILE"
        """))
    script.chmod(0o755)
    job_id = oar.oarsub("-S", "-n", "from-the-command-line", "./job.sh")
    assert oar.wait_for(job_id)[job_id] == "Terminated"
    job = oar.job(job_id)
    assert (job["job_name"], job["project"]) == ("from-the-command-line", "physics")
    assert "idempotent" in types_of(oar, job_id)
    assert (oar.workdir / f"script.{job_id}.out").read_text().strip() == "2"
    assert "#OAR" not in job["initial_request"] and "-t idempotent" in job["initial_request"]


def test_a_job_script_that_is_not_executable_is_refused(oar: LocalCluster) -> None:
    script = oar.workdir / "plain.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o644)
    line = refused(oar, "-S", "./plain.sh")
    assert "is not executable" in line


# ------------------------------------------------------------------------------- types, noop


def test_an_unknown_type_is_one_line(oar: LocalCluster) -> None:
    line = refused(oar, "-t", "nosuchtype", "true")
    assert line.startswith("oarsub: error: unknown job type 'nosuchtype' (known:")


def test_a_noop_job_holds_its_resources_and_runs_nothing(oar: LocalCluster) -> None:
    marker = oar.workdir / "noop-ran"
    job_id = oar.oarsub("-t", "noop", "-l", "/nodes=3,walltime=0:00:03", f"touch {marker}")
    assert oar.wait_for(job_id, ("Running",), timeout=30)[job_id] == "Running"
    blocked = oar.oarsub("-l", "/core=1", "true")
    time.sleep(1)
    assert oar.state(blocked) == "Waiting"  # the whole cluster is held
    assert oar.wait_for(job_id, timeout=30)[job_id] == "Terminated"  # at its walltime
    assert oar.wait_for(blocked)[blocked] == "Terminated"
    assert not marker.exists()
    second = oar.oarsub("-t", "noop", "-l", "/core=1,walltime=1:00:00", "true")
    oar.wait_for(second, ("Running",), timeout=30)
    assert oar.run("oardel", str(second)).returncode == 0
    assert oar.wait_for(second, timeout=30)[second] == "Terminated"


# ---------------------------------------------------------------------------- containers


def test_a_container_runs_its_inner_jobs_inside_it_and_ends_them(oar: LocalCluster) -> None:
    box = oar.oarsub("-t", "container", "-l", "/nodes=1,walltime=0:10:00", "sleep 600")
    oar.wait_for(box, ("Running",), timeout=30)
    inner = [oar.oarsub("-t", f"inner={box}", "-l", "/core=1,walltime=0:05:00", "sleep 4") for _ in range(3)]
    oar.wait_until(lambda: sum(oar.state(i) == "Running" for i in inner) == 2, message="two inner jobs running")
    assert [oar.state(i) for i in inner].count("Waiting") == 1  # the rest of the cluster is free: it waits inside
    states = oar.wait_for(inner, timeout=60)
    assert set(states.values()) == {"Terminated"}
    for job_id in inner:
        assert resources_of(oar, job_id) <= resources_of(oar, box)
    late = [oar.oarsub("-t", f"inner={box}", "-l", "/core=2,walltime=0:05:00", "sleep 600") for _ in range(2)]
    oar.wait_for(late[0], ("Running",), timeout=30)
    assert oar.state(late[1]) == "Waiting"
    assert oar.run("oardel", str(box)).returncode == 0
    ended = oar.wait_for([box, *late], timeout=60)
    assert ended[late[1]] == "Error" and "container" in (oar.job(late[1])["message"] or "")
    assert ended[late[0]] in ("Error", "Terminated")


def test_a_reservation_is_a_container(oar: LocalCluster) -> None:
    start = datetime.datetime.now() + datetime.timedelta(seconds=4)
    box = oar.oarsub("-r", f"{start:%Y-%m-%d %H:%M:%S}", "-t", "container", "-l", "/nodes=1,walltime=0:01:00",
                     "sleep 60")
    inner = oar.oarsub("-t", f"inner={box}", "-l", "/core=1,walltime=0:00:30", "true")
    assert oar.wait_for(inner, timeout=60)[inner] == "Terminated"
    assert oar.job(inner)["start_time"] >= start.timestamp() - 1
    assert resources_of(oar, inner) <= resources_of(oar, box)


def test_inner_jobs_go_only_in_ones_own_container(oar: LocalCluster) -> None:
    box = oar.oarsub("-t", "container", "-l", "/core=1,walltime=0:10:00", "sleep 600")
    with throwaway_user() as mallory:
        done = run_command_as(oar, mallory, "oarsub", "-d", "/tmp", "-t", f"inner={box}", "-l", "/core=1", "true")
    assert done.returncode != 0
    assert done.stderr.strip() == f"oarsub: error: inner={box}: the container belongs to another user"


# ------------------------------------------------------------------------ placeholder / allowed


def test_placeholder_resources_go_to_allowed_jobs(oar: LocalCluster) -> None:
    holder = oar.oarsub("-t", "noop", "-t", "placeholder=course", "-l", "/nodes=2,walltime=0:10:00", "true")
    oar.wait_for(holder, ("Running",), timeout=30)
    other = oar.oarsub("-l", "/nodes=2,walltime=0:01:00", "true")
    allowed = oar.oarsub("-t", "allowed=course", "-l", "/nodes=2,walltime=0:01:00", "true")
    assert oar.wait_for(allowed)[allowed] == "Terminated"
    assert resources_of(oar, allowed) == resources_of(oar, holder)
    assert oar.state(other) == "Waiting"  # one node is free, the placeholder's are not for it


# ------------------------------------------------------------------------------------ tokens


def test_a_token_job_waits_for_the_token(oar: LocalCluster) -> None:
    first = oar.oarsub("-t", "token:licence=1", "-l", "/core=1,walltime=0:05:00", "sleep 4")
    oar.wait_for(first, ("Running",), timeout=30)
    second = oar.oarsub("-t", "token:licence=1", "-l", "/core=1,walltime=0:05:00", "true")
    plain = oar.oarsub("-l", "/core=1,walltime=0:05:00", "true")
    assert oar.wait_for(plain)[plain] == "Terminated"
    assert oar.state(second) == "Waiting" and oar.state(first) == "Running"
    assert oar.wait_for(second, timeout=60)[second] == "Terminated"
    assert oar.job(second)["start_time"] >= oar.job(first)["stop_time"]
    assert refused(oar, "-t", "token:licence=2", "true").endswith("asks for more than the 1 the cluster has")


# ---------------------------------------------------------------------------------- cosystem


@pytest.mark.parametrize(("kind", "host"), [("cosystem", "node3"), ("deploy", "node2")])
def test_cosystem_and_deploy_jobs_run_on_their_configured_host(
    oar: LocalCluster, kind: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = oar.oarsub("-t", kind, "-l", "/nodes=1,walltime=0:05:00", "-p", "network_address = 'node1'",
                        "-O", f"{kind}.out", 'cat "$OAR_NODEFILE"; sleep 2')
    oar.wait_for(job_id, ("Running",), timeout=30)
    assert job_id in pinged_jobs(oar, monkeypatch)[host]  # Finaud asks the host that runs it for its end
    assert oar.wait_for(job_id)[job_id] == "Terminated"
    nodes = Path(oar.env["OAR_STATE_DIR"]) / "nodes"
    assert (nodes / host / "jobs" / str(job_id)).is_dir()
    assert not (nodes / "node1" / "jobs" / str(job_id)).exists()
    assert set((oar.workdir / f"{kind}.out").read_text().split()) == {"node1"}  # its nodefile: its nodes
    assert refused(oar, "-t", kind, "-l", "/core=1", "true").startswith("oarsub: error: core resource")


# --------------------------------------------------------------------------- admission rules


def test_the_default_rules(oar: LocalCluster) -> None:
    best = oar.oarsub("-t", "besteffort", "-l", "/core=1", "true")
    assert oar.job(best)["queue_name"] == "besteffort"
    assert refused(oar, "-l", "/core=1,walltime=11:00:00", "true") == (
        "oarsub: error: walltime 11:00:00 is over the maximum 10:00:00 of queue 'default'"
    )
    assert refused(oar, "-t", "besteffort", "-r", "2099-01-01 10:00:00", "true").endswith(
        "a job cannot both be of type besteffort and be a reservation"
    )
    plain = oar.oarsub("true")
    assert oar.scalar("SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = :id",
                      id=plain) == 7200
    oar.wait_for([best, plain])


def test_the_admin_queue_is_refused_to_a_user(oar: LocalCluster) -> None:
    with throwaway_user() as user:
        done = run_command_as(oar, user, "oarsub", "-d", "/tmp", "-q", "admin", "true")
        assert done.returncode != 0
        assert done.stderr.strip() == "oarsub: error: only member of the group admin can submit jobs in the admin queue"
        changed = run_command_as(oar, user, "oaradmissionrules", "-d", "oar.admin_queue")
        assert changed.returncode != 0 and "only the OAR administrator" in changed.stderr
    admin = oar.oarsub("-q", "admin", "true")  # root may
    oar.wait_for(admin)


def test_site_rules_add_a_type_and_refuse(oar: LocalCluster) -> None:
    job_id = oar.oarsub("-n", "retry-1", "true")
    assert "idempotent" in types_of(oar, job_id)
    assert refused(oar, "--project", "closed", "true") == "oarsub: error: project 'closed' takes no more jobs"
    oar.wait_for(job_id)


def test_oaradmissionrules_lists_disables_and_enables(oar: LocalCluster) -> None:
    listed = oar.run("oaradmissionrules")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[2] for line in listed.stdout.splitlines()]
    assert names[0] == "oar.default_queue" and "tests.site_rules.rule_closed_project" in names
    assert oar.run("oaradmissionrules", "-d", "tests.site_rules.rule_closed_project").returncode == 0
    try:
        job_id = oar.oarsub("--project", "closed", "true")
        oar.wait_for(job_id)
        assert " off tests.site_rules.rule_closed_project" in oar.run("oar-celery", "admission").stdout
    finally:
        assert oar.run("oaradmissionrules", "-e", "tests.site_rules.rule_closed_project").returncode == 0
    refused(oar, "--project", "closed", "true")
    added = oar.run("oaradmissionrules", "-n", '{"name": "nolong", "when": {"project": "p"}, "refuse": "no p"}')
    assert added.stdout.strip() == "added rule table.nolong"
    assert refused(oar, "--project", "p", "true") == "oarsub: error: no p"
    assert oar.run("oaradmissionrules", "-d", "table.nolong").returncode == 0
    oar.wait_for(oar.oarsub("--project", "p", "true"))
    bad = oar.run("oaradmissionrules", "-d", "no.such.rule")
    assert bad.returncode != 0 and bad.stderr.strip().startswith("oaradmissionrules: error: no admission rule named")
