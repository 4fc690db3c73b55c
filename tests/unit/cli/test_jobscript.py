"""``oarsub -S``: every ``#OAR`` directive, the command line's precedence, and the one-line errors."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from oar_celery.cli import oarsub
from oar_celery.client import jobscript
from oar_celery.client.jobscript import ScriptError, scan

SCRIPT = """#!/bin/bash
#OAR -l /nodes=2/core=1,walltime=0:10:00
#OAR -l core=4
#OAR -n "my sweep"
#OAR -O out.%jobid%
#OAR --stderr=err.%jobid%
#OAR -q default
#OAR -p mem > 64
#OAR --property switch = 'sw1'
#OAR -t besteffort
#OAR -t idempotent
#OAR --project physics
#OAR --notify [END]mail:me@example.org
#OAR --checkpoint 60
#OAR --signal 10
#OAR -a 12
#OAR --hold
# OAR -n not a directive (a space after the hash)
echo hello
"""


def write(tmp_path: Path, text: str, mode: int = 0o755, name: str = "job.sh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def submit(argv: list[str]) -> dict[str, Any]:
    return oarsub.build_request(oarsub.build_parser().parse_args(argv))


def test_every_directive_is_read() -> None:
    values = scan(SCRIPT).values
    assert values["resource"] == ["/nodes=2/core=1,walltime=0:10:00", "core=4"]
    assert values["name"] == "my sweep"
    assert values["stdout"] == "out.%jobid%"
    assert values["stderr"] == "err.%jobid%"
    assert values["queue"] == "default"
    assert values["properties"] == ["mem > 64", "switch = 'sw1'"]
    assert values["types"] == ["besteffort", "idempotent"]
    assert values["project"] == "physics"
    assert values["notify"] == "[END]mail:me@example.org"
    assert values["checkpoint"] == 60
    assert values["signal"] == "10"
    assert values["dependencies"] == [12]
    assert values["hold"] is True
    assert "array" not in values


def test_array_directives_and_glued_short_options() -> None:
    values = scan("#OAR --array 5\n#OAR -l/core=2\n#OAR --array-param-file params.txt\n").values
    assert values == {"array": 5, "resource": ["/core=2"], "array_param_file": "params.txt"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("#OAR -x foo", "job.sh:2: unknown #OAR directive '-x'"),
        ("#OAR --checkpoint soon", "job.sh:2: --checkpoint takes a number, not 'soon'"),
        ("#OAR -l", "job.sh:2: -l needs a value"),
        ("#OAR --hold now", "job.sh:2: --hold takes no value"),
    ],
)
def test_a_bad_directive_names_its_line(line: str, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        scan(f"#!/bin/sh\n{line}\n", name="job.sh")
    assert str(caught.value) == message


def test_the_script_fills_what_the_command_line_left_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, SCRIPT)
    request = submit(["-S", "./job.sh arg"])
    assert request["command"] == "./job.sh arg"
    assert request["resources"] == ["/nodes=2/core=1,walltime=0:10:00", "core=4"]
    assert request["name"] == "my sweep"
    assert request["properties"] == "(mem > 64) AND (switch = 'sw1')"
    assert request["types"] == ["besteffort", "idempotent"]
    assert request["dependencies"] == [12]
    assert request["hold"] is True
    assert request["checkpoint"] == 60
    assert request["signal"] == 10
    assert request["project"] == "physics"


def test_the_command_line_wins_over_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, SCRIPT)
    request = submit(["-S", "-l", "/core=1", "-n", "mine", "-t", "timesharing=*,*", "-p", "mem > 1",
                      "--project", "p2", "--checkpoint", "5", "./job.sh"])
    assert request["resources"] == ["/core=1"]
    assert request["name"] == "mine"
    assert request["types"] == ["timesharing=*,*"]
    assert request["properties"] == "mem > 1"
    assert request["project"] == "p2"
    assert request["checkpoint"] == 5
    assert request["queue"] == "default"  # still the script's: not given on the command line


def test_without_s_the_directives_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, SCRIPT)
    request = submit(["./job.sh"])
    assert request["name"] is None and request["resources"] == [] and request["types"] == []


def test_a_script_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SCRIPT, mode=stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(ScriptError, match="is not executable"):
        jobscript.read_script(path)


def test_a_missing_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="does not exist"):
        jobscript.read_script(tmp_path / "absent.sh")


def test_oarsub_prints_one_line_naming_the_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "#!/bin/sh\n\n#OAR --walltime 10\n")
    assert oarsub.main(["-S", "./job.sh"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["oarsub: error: ./job.sh:3: unknown #OAR directive '--walltime'"]
