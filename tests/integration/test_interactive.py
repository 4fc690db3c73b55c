"""oarsub -I, oarsub -C, oarsh and oarcp in real terminals (tmux), against a real local cluster.

The shells run on the nodes' job-shell services (TLS, the job's key); the
terminal is driven with send-keys and read with capture-pane, as a user would
see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import BIN, LocalCluster
from tests.terminal import PROMPT, Terminal

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def shells(cluster_factory: Any) -> LocalCluster:
    """Three nodes of two cores: a job of two nodes leaves one outside it."""
    return cluster_factory(nodes=3, cores=2, OAR_INTERACTIVE_CONNECT_TIMEOUT="15")


#: pyenv's rehash lock, which root's ``.bashrc`` takes (``pyenv init``) on this kind of machine.
PYENV_LOCK = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / ".pyenv-shim"


def clear_abandoned_pyenv_lock() -> None:
    """The job shells here are root's bash, whose ``.bashrc`` runs ``pyenv rehash``. A shell killed while it
    held the rehash lock (a lost client's job, say) leaves the lock behind, and every later shell then waits
    a minute for it before its first prompt. A rehash holds the lock for well under a second."""
    with contextlib.suppress(FileNotFoundError):
        if time.time() - PYENV_LOCK.stat().st_mtime > 10:
            PYENV_LOCK.unlink()


@pytest.fixture
def term(shells: LocalCluster) -> Iterator[Terminal]:
    clear_abandoned_pyenv_lock()
    terminal = Terminal(shells.env, shells.workdir, bin_dir=BIN)
    yield terminal
    terminal.close()
    shells.end_active_jobs()


def connected(term: Terminal, host: str = "node1") -> int:
    """Wait for oarsub's connection line and the job's prompt; the job id."""
    screen = term.wait_for(f"via the node {host}")
    job_id = int(re.findall(rf"Connect to OAR job (\d+) via the node {host}", screen)[-1])
    term.type("PS1='job> '")
    term.wait_for("job> ")
    return job_id


def line_after(term: Terminal, command: str, marker: str) -> str:
    """Type ``command``, which prints ``<marker>=<value>``; the value."""
    term.type(command)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        screen = term.screen()
        found = re.findall(rf"^{marker}=(\S*)\s*$", screen, re.M)
        if found and screen.rstrip().endswith(("job>", "top$")):  # the next prompt: what follows is typed there
            return str(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no {marker}= line after {command!r}; the screen:\n{term.screen()}")


def test_oarsub_I_gives_a_shell_on_the_job_cores_with_its_environment_and_its_exit_status(
        shells: LocalCluster, term: Terminal) -> None:
    term.type("oarsub -I -l /nodes=1/core=2,walltime=0:05:00")
    screen = term.wait_for("Connect to OAR job")
    assert "Interactive mode: waiting..." in screen and "Starting..." in screen
    job_id = connected(term)

    assert line_after(term, 'echo "cores=$(nproc)"', "cores") == "2"
    assert line_after(term, 'echo "id=$OAR_JOB_ID"', "id") == str(job_id)
    assert line_after(term, 'echo "dir=$(pwd)"', "dir") == str(shells.workdir)
    assert line_after(term, 'echo "tty=$(tty)"', "tty").startswith("/dev/pts/")
    assert shells.state(job_id) == "Running"

    term.resize(100, 30)  # the job's terminal follows the user's window
    assert line_after(term, 'echo "size=$(stty size | tr " " x)"', "size") == "30x100"
    term.type("sleep 300")
    time.sleep(1)
    term.keys("C-c")  # Ctrl-C reaches the job's foreground process, not oarsub
    assert line_after(term, 'echo "interrupted=$?"', "interrupted") == "130"

    term.type("exit 3")
    term.wait_for(f"Disconnected from OAR job {job_id}")
    term.type('echo "status=$?"')
    assert term.wait_for("status=3")
    shells.wait_for(job_id)
    job = shells.job(job_id)
    assert (job["state"], job["exit_code"], job["job_type"]) == ("Terminated", 3 << 8, "INTERACTIVE")


def test_the_walltime_ends_the_session_and_tells_the_user(shells: LocalCluster, term: Terminal) -> None:
    term.type("oarsub -I -l /nodes=1/core=1,walltime=0:00:10")
    job_id = connected(term)
    screen = term.wait_for(f"Job {job_id} has reached its walltime: it was killed.", timeout=60)
    assert "oarsub: error: Job was terminated." in screen
    term.type('echo "status=$?"')
    term.wait_for("status=255")
    shells.wait_for(job_id)
    assert "walltime reached" in (shells.job(job_id)["message"] or "")  # Sarko's, as for a batch job


def test_oarsub_C_opens_a_second_shell_in_a_batch_job(shells: LocalCluster, term: Terminal) -> None:
    job_id = shells.oarsub("-l", "/nodes=1/core=1,walltime=0:05:00", "sleep 300")
    shells.wait_for(job_id, ["Running"])
    term.type(f"oarsub -C {job_id}")
    assert connected(term) == job_id
    assert line_after(term, 'echo "id=$OAR_JOB_ID"', "id") == str(job_id)
    term.type("exit")
    term.wait_for(PROMPT, count=2)
    time.sleep(1)
    assert shells.state(job_id) == "Running"  # leaving a -C shell leaves the job running


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(word) for word in out.split()]


def test_a_lost_interactive_client_kills_its_job(shells: LocalCluster, term: Terminal) -> None:
    term.type("oarsub -I -l /nodes=1/core=1,walltime=0:05:00")
    job_id = connected(term)
    clients = _children(term.pane_pid())
    assert clients, "oarsub is not running in the terminal"
    for pid in clients:
        os.kill(pid, signal.SIGKILL)
    assert shells.wait_for(job_id, timeout=60)[job_id] == "Error"
    assert "killed" in (shells.job(job_id)["message"] or "")
    log = (shells.state_dir / "log" / "oar-node-node1.log").read_text()
    assert f"job {job_id}: its interactive client is gone: the job is killed" in log


def test_an_interactive_job_whose_client_never_connects_is_killed(shells: LocalCluster) -> None:
    """The client died between its submission and its shell (here: it never was a terminal at all)."""
    submit = ("import os; from oar_celery.client import api; from oar_celery.config import current_user; "
              "print(api.submit({'command': '', 'interactive': True, 'resources': ['/core=1,walltime=0:05:00'], "
              "'directory': os.getcwd(), 'user': current_user()})[0])")
    done = shells.run(str(BIN / "python"), "-c", submit)
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout)
    shells.wait_for(job_id, ["Running"])
    assert shells.wait_for(job_id, timeout=60)[job_id] == "Error"
    logs = "".join(p.read_text() for p in (shells.state_dir / "log").glob("oar-node-*.log"))
    assert f"job {job_id}: its interactive client never connected: the job is killed" in logs


def test_oarsh_and_oarcp_reach_the_nodes_of_the_job_and_no_other(shells: LocalCluster, term: Terminal) -> None:
    term.type("oarsub -I -l /nodes=2/core=1,walltime=0:05:00")
    job_id = connected(term)
    assert line_after(term, "oarsh node2 'echo \"where=$OAR_CPUSET:$OAR_JOB_ID:$(nproc)\"'", "where") == (
        f"{_cpuset_prefix(shells)}node2/{job_id}:{job_id}:1")
    assert line_after(term, "echo copied=payload > sent.txt && oarcp sent.txt node2:got.txt && oarsh node2 cat got.txt",
                      "copied") == "payload"
    assert (shells.workdir / "got.txt").read_text() == "copied=payload\n"

    assert line_after(term, 'oarsh node3 true; echo "refused=$?"', "refused") == "255"
    assert f"oarsh: error: node3 is not a node of job {job_id}" in term.screen()
    log = (shells.state_dir / "log" / "oar-node-node3.log").read_text()
    assert "refused" in log and f"node3 is not a node of job {job_id}" in log
    term.type("exit")
    shells.wait_for(job_id)


def _cpuset_prefix(shells: LocalCluster) -> str:
    """``OAR_CPUSET`` names ``/<cgroup name>/<host>/<job id>``; '' if this machine gives no cgroup."""
    name = shells.env.get("OAR_CGROUP_NAME")
    found = list((shells.state_dir / "nodes" / "node1" / "jobs").glob("*/cgroup"))
    if not found:
        return ""
    text = found[0].read_text()
    match = re.search(r"/([^/\s]+)/node1/\d+", text)
    return f"/{name or (match.group(1) if match else 'oar')}/"


def test_an_exported_job_key_lets_oarsh_in_from_outside_the_job(shells: LocalCluster, tmp_path: Path) -> None:
    key_file = tmp_path / "key.%jobid%"
    job_id = shells.oarsub("-k", "-e", str(key_file), "-l", "/nodes=1/core=1,walltime=0:05:00", "sleep 300")
    path = tmp_path / f"key.{job_id}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    shells.wait_for(job_id, ["Running"])
    done = shells.run("oarsh", "-i", str(path), "node1", 'echo "inside=$OAR_JOB_ID"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"inside={job_id}"


def test_refusals_get_one_line(shells: LocalCluster) -> None:
    ended = shells.oarsub("-l", "/nodes=1/core=1", "true")
    shells.wait_for(ended)
    done = shells.run("oarsub", "-C", str(ended))
    assert done.returncode != 0
    assert done.stderr.strip() == f"oarsub: error: job {ended} has ended (Terminated)"

    done = shells.run("oarsub", "-I", "hostname")
    assert (done.returncode, done.stderr.strip()) == (2, "oarsub: error: an interactive job (-I) takes no command")
    done = shells.run("oarsub", "-e", "k", "-l", "/core=1", "true")
    assert done.returncode == 2 and "--use-job-key (or -k)" in done.stderr


def test_a_wrong_or_forged_job_key_is_refused_by_the_node(shells: LocalCluster, tmp_path: Path) -> None:
    """The attacker's side: a key for another job, and a ticket that adds a node."""
    mine = shells.oarsub("-l", "/nodes=1/core=1,walltime=0:05:00", "sleep 300")
    other = shells.oarsub("-l", "/nodes=1/core=1,walltime=0:05:00", "sleep 300")
    shells.wait_for([mine, other], ["Running"])
    answer = _key_of(shells, mine)
    wrong = {**answer, "job_id": other}
    forged = {**answer, "ticket": {**answer["ticket"], "hosts": [*answer["ticket"]["hosts"], "node3"]}}
    other_host = _key_of(shells, other)["first_host"]
    for name, key, host, line in (("wrong", wrong, other_host, f"wrong job key for job {other}"),
                                  ("forged", forged, "node3", f"the ticket of job {mine} is forged")):
        (tmp_path / name).write_text(json.dumps(key))
        done = shells.run("oarsh", "-i", str(tmp_path / name), host, "true")
        assert (done.returncode, done.stderr.strip()) == (255, f"oarsh: error: {line}"), done


def _key_of(shells: LocalCluster, job_id: int) -> dict[str, Any]:
    done = shells.run(str(BIN / "python"), "-c", f"import json; from oar_celery.client import api; "
                      f"print(json.dumps(api.job_key({job_id})['job_key']))")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_reservation_without_a_command_holds_its_resources_and_C_enters_it(shells: LocalCluster) -> None:
    import datetime

    start = (datetime.datetime.now() + datetime.timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S")
    job_id = shells.oarsub("-r", start, "-l", "/nodes=1/core=1,walltime=0:01:00")
    assert shells.job(job_id)["job_type"] == "INTERACTIVE"
    shells.wait_for(job_id, ["Running"], timeout=60)
    done = subprocess.run([str(BIN / "oarsub"), "-C", str(job_id)], env=shells.env, cwd=shells.workdir,
                          input='echo "in=$OAR_JOB_ID"; exit 5\n', capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    assert f"in={job_id}" in done.stdout and f"Connect to OAR job {job_id} via the node" in done.stdout
    time.sleep(1)
    assert shells.state(job_id) == "Running"  # a -C shell's end is not the reservation's
    shells.end_active_jobs()


def test_a_job_ended_before_its_walltime_is_refused_by_its_other_nodes(shells: LocalCluster, tmp_path: Path) -> None:
    """A key kept from a job's life (its ticket still good until the walltime) opens nothing once it ended."""
    job_id = shells.oarsub("-l", "/nodes=2/core=1,walltime=0:05:00", "sleep 300")
    shells.wait_for(job_id, ["Running"])
    key = _key_of(shells, job_id)
    (tmp_path / "kept").write_text(json.dumps(key))
    second = key["ticket"]["hosts"][1]
    alive = shells.run("oarsh", "-i", str(tmp_path / "kept"), second, 'echo "there=$OAR_JOB_ID"')
    assert (alive.returncode, alive.stdout.strip()) == (0, f"there={job_id}"), alive.stderr
    shells.run("oardel", str(job_id))
    shells.wait_for(job_id)
    done = shells.run("oarsh", "-i", str(tmp_path / "kept"), second, "true")
    assert (done.returncode, done.stderr.strip()) == (255, f"oarsh: error: job {job_id} has ended")


def test_a_node_worker_restart_ends_the_interactive_job_whose_shell_it_served(
        shells: LocalCluster, term: Terminal) -> None:
    term.type("oarsub -I -l /nodes=1/core=1,walltime=0:05:00")
    job_id = connected(term)
    host = shells.scalar("SELECT r.network_address FROM assigned_resources a JOIN resources r "
                         "ON r.resource_id = a.resource_id JOIN jobs j ON j.assigned_moldable_job = a.moldable_job_id "
                         "WHERE j.job_id = :id", id=job_id)
    shells.kill_process(str(host))
    term.wait_for("oarsub: error: Job was terminated.")
    shells.restart_process(str(host))
    assert shells.wait_for(job_id, timeout=90)[job_id] == "Error"
    log = (shells.state_dir / "log" / f"oar-node-{host}.log").read_text()
    assert f"job {job_id}: its interactive shell went with the previous worker: the job is killed" in log
