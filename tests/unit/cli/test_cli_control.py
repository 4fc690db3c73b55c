"""oardel, oarhold, oarresume and oarnodesetting: what they send and how they report."""

from __future__ import annotations

from typing import Any

import pytest

from oar_celery.cli import oardel, oarhold, oarnodesetting, oarresume
from oar_celery.client import api


class FakeHead:
    """Stands in for ``transport.call``: records requests, answers what it is told."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, task: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self.sent.append((task, kwargs))
        return self.answer


@pytest.fixture
def head(monkeypatch: pytest.MonkeyPatch) -> FakeHead:
    fake = FakeHead({"results": {}})
    monkeypatch.setattr("oar_celery.client.transport.call", fake)
    return fake


def test_oardel_sends_the_user_and_prints_each_line(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    head.answer = {
        "results": {"42": "Deleting the job = 42 ...REGISTERED.", "43": "Deleting the job = 43 ...REGISTERED."},
        "failed": [],
    }
    assert oardel.main(["42", "43"]) == 0
    task, kwargs = head.sent[0]
    assert task == "oar.control.delete"
    assert kwargs["job_ids"] == [42, 43] and kwargs["user"] and kwargs["signal"] is None
    assert capsys.readouterr().out.splitlines() == [
        "Deleting the job = 42 ...REGISTERED.",
        "Deleting the job = 43 ...REGISTERED.",
    ]


def test_oardel_fails_if_one_job_failed(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's oardel exit status 7 for a job that does not exist."""
    head.answer = {
        "results": {"42": "Deleting the job = 42 ...REGISTERED.", "9": "job 9 does not exist"},
        "failed": [9],
    }
    assert oardel.main(["42", "9"]) == 7
    out, err = capsys.readouterr()
    assert out == "Deleting the job = 42 ...REGISTERED.\n"
    assert err == "job 9 does not exist\n"


def test_oardel_signal_and_checkpoint(head: FakeHead) -> None:
    head.answer = {"results": {"5": "Signal 10 sent to the job 5."}, "failed": []}
    assert oardel.main(["-s", "USR1", "5"]) == 0
    assert head.sent[-1][1]["signal"] == 10
    assert oardel.main(["-c", "5"]) == 0
    assert head.sent[-1][1]["checkpoint"] is True


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "no job id"),
        (["x"], "invalid number"),
        (["-c", "-s", "12", "1"], "together"),
        (["-s", "NOPE", "1"], "signal"),
    ],
)
def test_oardel_bad_input(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert oardel.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("oardel: error: ") and words in err


def test_oarhold_and_oarresume(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    head.answer = {"results": {"3": "[3] Hold request was sent to the OAR server."}, "failed": []}
    assert oarhold.main(["-r", "3"]) == 0
    assert head.sent[-1] == ("oar.control.hold", {"user": head.sent[-1][1]["user"], "job_ids": [3], "running": True})
    head.answer = {"results": {"3": "job 3 is not held (Running)"}, "failed": [3]}
    assert oarresume.main(["3"]) == 1
    assert head.sent[-1][0] == "oar.control.resume"
    assert "not held" in capsys.readouterr().err
    assert oarhold.main([]) == 2 and oarresume.main([]) == 2


def test_a_failure_is_what_the_head_lists_never_what_a_line_says() -> None:
    result = api.outcome(
        {"results": {"1": "job 1: the word error is no failure", "2": "job 2 does not exist", "3": {"error": "no"}},
         "failed": [2]},
        [1, 2, 3, 4],
    )
    assert result.failed == {2, 3, 4}  # listed, answered with an error, not answered at all
    assert result[1].startswith("job 1") and result[3] == "no" and "4" in result[4]


def test_head_error_is_one_line(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    head.answer = {"error": "array 8 does not exist"}
    assert oarhold.main(["8"]) == 1
    assert capsys.readouterr().err == "oarhold: error: array 8 does not exist\n"


def test_oarnodesetting_request(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    head.answer = {"results": ["2 resource(s) will be set Absent"]}
    argv = ["-h", "node1", "-s", "absent", "-p", "mem=64", "-p", "switch='sw 1'", "-n", "-m", "on", "-d", "off"]
    assert oarnodesetting.main(argv) == 0
    task, kwargs = head.sent[0]
    assert task == "oar.control.node_setting"
    assert kwargs["hosts"] == ["node1"] and kwargs["state"] == "Absent"
    assert kwargs["properties"] == {"mem": "64", "switch": "sw 1"}
    assert kwargs["no_wait"] is True and kwargs["maintenance"] == "on" and kwargs["drain"] == "off"
    assert kwargs["add"] is False and kwargs["resource_ids"] == []
    assert capsys.readouterr().out == "2 resource(s) will be set Absent\n"


def test_oarnodesetting_add(head: FakeHead) -> None:
    head.answer = {"results": ["new resource 9 on node9"]}
    assert oarnodesetting.main(["-a", "-h", "node9", "-p", "core=3"]) == 0
    assert head.sent[0][1]["add"] is True


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["-h", "n1", "-s", "Suspected"], "bad state"),
        (["-h", "n1", "-s", "Broken"], "bad state"),
        (["-h", "n1", "-p", "mem"], "NAME=VALUE"),
        (["-h", "n1", "-p", "1mem=3"], "NAME=VALUE"),
        (["-h", "n1", "-p", "m-em=3"], "NAME=VALUE"),
        (["-a"], "-a needs -h"),
        (["-f", "/no/such/file", "-s", "Alive"], "cannot read the host file"),
        (["-a", "-h", "n1", "--sql", "core = 1"], "-a and --sql"),
        (["--sql", " ", "-s", "Alive"], "empty --sql"),
        (["-h", "n1"], "nothing to do"),
        (["-h", "n1", "-m", "maybe"], "invalid choice"),
        (["-r", "zero", "-s", "Alive"], "invalid number"),
    ],
)
def test_oarnodesetting_bad_input(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert oarnodesetting.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("oarnodesetting: error: ") and words in err


def test_oarnodesetting_refused(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    head.answer = {"error": "only root or oar may change resources, not bob"}
    assert oarnodesetting.main(["-r", "1", "-s", "Dead"]) == 1
    assert capsys.readouterr().err == "oarnodesetting: error: only root or oar may change resources, not bob\n"


def test_oar3_oardel_exit_codes(head: FakeHead, capsys: pytest.CaptureFixture[str]) -> None:
    """OAR3's oardel: 1 not the owner, 6 already finished, 8 admin option, 15 when failures differ."""
    cases = [
        ({"1": "job 1 belongs to bob, not to alice"}, 1),
        ({"1": "job 1 is already finished (Terminated)"}, 6),
        ({"1": "You must be oar or root to use the --besteffort option"}, 8),
        ({"1": "job 1 does not exist", "2": "job 2 is already finished (Error)"}, 15),
    ]
    for results, code in cases:
        head.answer = {"results": results, "failed": [int(job_id) for job_id in results]}
        assert oardel.main(list(results)) == code, results
    capsys.readouterr()


def test_oar3_oardel_admin_options_reach_their_tasks(head: FakeHead) -> None:
    """OAR3's -b and --force-terminate-finishing-job are head requests of their own."""
    head.answer = {"results": {"5": "Add besteffort type for the job 5."}, "failed": []}
    assert oardel.main(["-b", "5"]) == 0
    assert head.sent[-1][0] == "oar.control.besteffort"
    head.answer = {"results": {"5": "Force the termination of the job = 5 ...REGISTERED."}, "failed": []}
    assert oardel.main(["--force-terminate-finishing-job", "5"]) == 0
    assert head.sent[-1][0] == "oar.control.force_terminate"


@pytest.mark.parametrize(
    "argv",
    [["-b", "-c", "5"], ["--sql", "job_user = = 'x'"], ["--sql"], ["--force-terminate-finishing-job"]],
)
def test_oar3_oardel_new_options_bad_input_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert oardel.main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("oardel: error: "), err


def test_oar3_oarnodesetting_state_without_host_is_the_local_host(head: FakeHead, tmp_path: Any) -> None:
    """OAR3: without -h, -r or --sql, oarnodesetting acts on the host it runs on; -f reads hosts from a file."""
    import socket

    head.answer = {"results": ["ok"]}
    assert oarnodesetting.main(["-s", "Alive"]) == 0
    assert head.sent[-1][1]["hosts"] == [socket.gethostname().split(".")[0]]
    hosts = tmp_path / "hosts"
    hosts.write_text("node3\n\nnode4\n")
    assert oarnodesetting.main(["-f", str(hosts), "-s", "Absent"]) == 0
    assert head.sent[-1][1]["hosts"] == ["node3", "node4"]
