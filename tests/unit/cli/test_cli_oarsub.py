"""oarsub: argument checks, the request sent to the head, and what the user sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oar_celery.cli import oarsub


def parse(argv: list[str]) -> dict[str, Any]:
    return oarsub.build_request(oarsub.build_parser().parse_args(argv))


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("oarsub: error: ")
    return lines[0]


def test_request_from_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path)
    request = parse(
        [
            "-l", "/nodes=2/core=4,walltime=1:00:00",
            "-l", "core=1",
            "-n", "my job",
            "-d", "work",
            "-O", "out.%jobid%",
            "-q", "default",
            "--hold",
            "-p", "mem > 64",
            "-t", "besteffort",
            "-a", "12",
            "-a", "13",
            "--notify", "[END]mail:me@example.org",
            "--checkpoint", "60",
            "--signal", "SIGUSR2",
            "--project", "p1",
            "./run.sh arg",
        ]
    )  # fmt: skip
    assert request["command"] == "./run.sh arg"
    assert request["resources"] == ["/nodes=2/core=4,walltime=1:00:00", "core=1"]
    assert request["directory"] == str(tmp_path / "work")
    assert request["hold"] is True
    assert request["types"] == ["besteffort"]
    assert request["dependencies"] == [12, 13]
    assert request["signal"] == 12
    assert request["checkpoint"] == 60
    assert request["array"] is None
    assert request["reservation"] is None
    assert request["project"] == "p1"


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    request = parse(["sleep", "60"])
    assert request["command"] == "sleep 60"
    assert request["directory"] == str(tmp_path)
    assert request["resources"] == []
    assert request["hold"] is False
    assert request["signal"] is None


def test_reservation_date_is_normalized() -> None:
    assert parse(["-r", "2030-1-2 3:04", "true"])["reservation"] == "2030-01-02 03:04:00"


def test_interactive_request_has_no_command() -> None:
    request = parse(["-I", "-l", "/nodes=1/core=2"])
    assert request["interactive"] is True and request["command"] == ""
    assert "interactive" not in parse(["true"])


def test_array_param_file(tmp_path: Path) -> None:
    params = tmp_path / "params"
    params.write_text("# comment\na 1\n\nb 2\n")
    request = parse(["--array-param-file", str(params), "./run.sh"])
    assert request["array_params"] == ["a 1", "b 2"]
    assert request["array"] == 2


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        ([], 2, "command is required"),
        (["   "], 2, "command is required"),
        (["-I", "hostname"], 2, "an interactive job (-I) takes no command"),
        (["-I", "-r", "2030-01-01 10:00:00"], 2, "-I cannot be used with -r"),
        (["-e", "key", "true"], 2, "--use-job-key (or -k)"),
        (["-C", "0"], 2, "positive"),
        (["-d", "/no/such/directory", "true"], 2, "does not exist"),
        (["-p", "mem >", "true"], 1, "property"),
        (["-r", "tomorrow", "true"], 2, "reservation date"),
        (["-r", "2030-02-30 10:00:00", "true"], 2, "reservation date"),
        (["--notify", "pigeon:home", "true"], 1, "--notify"),
        (["--notify", "mail:", "true"], 1, "empty --notify mail"),
        (["--notify", "[LUNCH]mail:me@example.org", "true"], 1, "unknown --notify tag"),
        (["--signal", "SIGNOPE", "true"], 2, "signal"),
        (["--array", "0", "true"], 2, "positive"),
        (["--array-param-file", "/no/such/file", "true"], 2, "array parameter file"),
        (["--bogus", "true"], 2, "--bogus"),
        (["-a", "x", "true"], 2, "invalid number"),
    ],
)
def test_bad_input(argv: list[str], code: int, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert oarsub.main(argv) == code
    assert words in one_error_line(capsys)
    assert capsys.readouterr().out == ""


def test_submit_prints_the_job_id(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[dict[str, Any]] = []

    def fake_call(task: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        sent.append({"task": task, **kwargs})
        return {"job_ids": [42]}

    monkeypatch.setattr("oar_celery.client.transport.call", fake_call)
    assert oarsub.main(["-l", "nodes=1", "true"]) == 0
    assert capsys.readouterr().out == "OAR_JOB_ID=42\n"
    assert sent[0]["task"] == "oar.almighty.submit"
    request = sent[0]["request"]
    assert request["user"]
    assert request["resources"] == ["nodes=1"]
    assert request["initial_request"] == "oarsub -l nodes=1 true"


def test_array_prints_every_id_then_the_array_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("oar_celery.client.transport.call", lambda *a, **k: {"job_ids": [7, 8, 9]})
    assert oarsub.main(["--array", "3", "true"]) == 0
    assert capsys.readouterr().out == "OAR_JOB_ID=7\nOAR_JOB_ID=8\nOAR_JOB_ID=9\nOAR_ARRAY_ID=7\n"


def test_refusal_from_the_head(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("oar_celery.client.transport.call", lambda *a, **k: {"error": "unknown queue 'nope'"})
    assert oarsub.main(["-q", "nope", "true"]) == 1
    assert one_error_line(capsys) == "oarsub: error: unknown queue 'nope'"


@pytest.mark.parametrize(
    ("answer", "code", "verdict"),
    [
        ({"status": "granted", "start": 1900000000}, 0, "Reservation valid --> OK"),
        ({"status": "refused", "message": "no resources"}, 1, "Reservation not valid --> KO"),
    ],
)
def test_reservation_verdict(
    answer: dict[str, Any], code: int, verdict: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("oar_celery.client.transport.call", lambda *a, **k: {"job_ids": [5]})
    monkeypatch.setattr("oar_celery.client.replies.wait_reservation", lambda job_id, token, timeout=None: answer)
    assert oarsub.main(["-r", "2030-01-01 10:00:00", "true"]) == code
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == ["OAR_JOB_ID=5", "Reservation mode: waiting validation...", verdict]
    assert ("Reservation start: " in out) == (code == 0)
    assert ("no resources" in err) == (code != 0)


def test_unreachable_broker_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from oar_celery.config import settings

    monkeypatch.setenv("OAR_BROKER_URL", "redis://:secret@127.0.0.1:1/0")
    settings.cache_clear()
    assert oarsub.main(["true"]) == 1
    assert one_error_line(capsys) == (
        "oarsub: error: cannot reach the broker at redis://:****@127.0.0.1:1/0 (Connection refused)"
    )


def _fresh_python(code: str) -> str:
    """``code`` run by an interpreter of its own (nothing imported yet); its standard output."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_imports_neither_celery_nor_sqlalchemy() -> None:
    code = (
        "import sys\n"
        "from oar_celery.cli.oarsub import main\n"
        "rc = main(['--help'])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('celery', 'kombu', 'sqlalchemy', 'redis') if m in sys.modules]\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    assert "--hold" in _fresh_python(code)


def test_a_submission_imports_nothing_heavy_before_its_request_leaves() -> None:
    """The modules a plain ``oarsub -l ... CMD`` loads up to the push: a start-up cost every user pays."""
    code = (
        "import sys\n"
        "from oar_celery.cli import oarsub\n"
        "from oar_celery.client import api, resp, transport, wire\n"
        "from oar_celery.protocol.auth import fetch_credential, request_digest\n"
        "args = oarsub.build_parser().parse_args(['-l', '/nodes=1/core=2,walltime=1:00:00', 'true'])\n"
        "oarsub.build_request(args)\n"
        "wire.task_message('oar.almighty.submit', {'request': {'command': 'true'}}, 'oar.head', expires=5)\n"
        "request_digest({'request': {'command': 'true'}})\n"
        "heavy = ('celery', 'kombu', 'sqlalchemy', 'redis', 'dataclasses', 'inspect', 'uuid', 'pathlib', 'shutil',\n"
        "         'datetime', 'secrets', 'random', 'urllib.parse', 'signal', 'oar_celery.scheduler.request')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    assert _fresh_python(code).strip() == ""
