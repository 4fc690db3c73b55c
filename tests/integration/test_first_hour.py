"""A new admin's first hour: the README's commands in a clean shell, its links, the wheel, man pages, completion."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.cluster import command_path

REPO = Path(__file__).parents[2]
README = REPO / "README.md"
#: Commands of "Using it" that must succeed on a fresh cluster (the others name job ids of the reader's own).
MUST_SUCCEED = ("oar-celery up", "oarsub", "oarstat", "oarnodes", "oar-celery status", "oar-celery down")


def code_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(lines: list[str]) -> list[str]:
    """The command of each line, its trailing comment left out."""
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in lines if line.strip() and not line.startswith("#")]


def clean_environment(home: Path) -> dict[str, str]:
    """A login shell's environment with nothing of this test run: no venv on PATH, no OAR_* variables."""
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "root")}


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_the_readme_commands_are_found_and_work_in_a_clean_shell(tmp_path: Path, quiet_redis: str) -> None:
    text = README.read_text()
    first_screen = commands(code_blocks(text)[0])
    setup = [line for line in first_screen if line.startswith("export PATH=")]
    assert setup, "the README's first screen says how to put the commands on PATH"
    using = commands(code_blocks(section(text, "Using it"))[0])
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.sh").write_text("#!/bin/sh\necho run on $(hostname)\n")
    (work / "reserved.sh").write_text("#!/bin/sh\necho reserved\n")
    (work / "run.sh").chmod(0o755)
    (work / "reserved.sh").chmod(0o755)
    (work / "sim.py").write_text("import os\nprint('index', os.environ['OAR_ARRAY_INDEX'])\n")
    script = [f"cd {REPO}", *setup, f"cd {work}"]
    script += [f"{command}\necho \"@@ $? {index}\"" for index, command in enumerate(using)]
    env = clean_environment(tmp_path)
    env["OAR_BROKER_URL"] = quiet_redis  # the test's own Redis database, never the reader's
    try:
        done = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True,
                              timeout=200)
    finally:
        subprocess.run([command_path("oar-celery"), "down"], env={**env, "PATH": os.environ["PATH"]},
                       capture_output=True, timeout=60)
    assert "command not found" not in done.stderr, done.stderr
    codes = {using[int(index)]: code for code, index in re.findall(r"^@@ (\d+) (\d+)$", done.stdout, re.M)}
    assert list(codes) and set(codes) == set(using), done.stdout + done.stderr
    for command, code in codes.items():
        assert code != "127", command
        if command.startswith(MUST_SUCCEED):
            assert code == "0", f"{command}: {done.stdout}\n{done.stderr}"
    assert "unknown setting" not in done.stderr


def test_every_link_of_the_readme_and_the_docs_resolves_inside_the_repository() -> None:
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{page.name} links {target}, which is not in the repository"
            assert REPO in path.parents or path == REPO, f"{page.name} links {target}, outside the repository"


@pytest.fixture(scope="module", params=["wheel", "repository"])
def installed_wheel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed in a fresh venv as the README says: from a wheel (``python -m build``), or from
    the repository (``pip install <checkout>``). Its dependencies are not installed: the test's are used."""
    out = tmp_path_factory.mktemp(request.param)
    source = str(REPO)
    if request.param == "wheel":
        built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out / "dist"), source],
                               capture_output=True, text=True, timeout=400)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        assert "license" not in built.stderr.lower() or "deprecat" not in built.stderr.lower(), built.stderr
        wheels = list((out / "dist").glob("oar_celery-*.whl"))
        assert len(wheels) == 1
        source = str(wheels[0])
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                "--no-deps", "--quiet", source], capture_output=True, text=True, timeout=400)
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_package_installs_every_command_with_its_manual_page(installed_wheel: Path, tmp_path: Path) -> None:
    from scripts.manpages import COMMANDS

    deps = sysconfig.get_paths()["purelib"]  # the dependencies, not the package: it comes from the wheel
    env = {**clean_environment(tmp_path), "PYTHONPATH": deps, "PATH": f"{installed_wheel / 'bin'}:/usr/bin:/bin"}
    for command in COMMANDS:
        done = subprocess.run([command, "--help"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), f"{command}: {done.stderr}"
        page = installed_wheel / "share" / "man" / "man1" / f"{command}.1"
        assert page.exists(), command
    where = subprocess.run(["python3", "-c", "import oar_celery; print(oar_celery.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(installed_wheel)), where.stdout + where.stderr
    if shutil.which("man"):
        found = subprocess.run(["man", "-w", "oarsub"], env=env, capture_output=True, text=True, timeout=60)
        assert found.stdout.strip() == str(installed_wheel / "share" / "man" / "man1" / "oarsub.1"), found.stderr


def test_the_manual_pages_are_those_of_the_current_options(tmp_path: Path) -> None:
    from scripts.manpages import COMMANDS, main

    main([str(tmp_path)])
    for command in COMMANDS:
        shipped = REPO / "docs" / "man" / f"{command}.1"
        assert shipped.exists(), f"no manual page for {command}: run 'make man'"
        assert (tmp_path / f"{command}.1").read_text() == shipped.read_text(), f"{command}.1 is stale: run 'make man'"


def test_every_manual_page_renders_with_man(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed on this machine")
    from scripts.manpages import COMMANDS

    for command in COMMANDS:
        done = subprocess.run(["man", "-l", str(REPO / "docs" / "man" / f"{command}.1")],
                              env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stderr == "", f"{command}: {done.stderr}"
        rendered = re.sub(r".\x08", "", done.stdout)
        assert rendered.splitlines()[0].split()[0] == command.upper() + "(1)"
        assert "SYNOPSIS" in rendered and "SEE ALSO" in rendered
    oarsub = subprocess.run(["man", "-l", str(REPO / "docs" / "man" / "oarsub.1")], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MANWIDTH": "100"}).stdout
    assert "--resource" in re.sub(r".\x08", "", oarsub).replace("‐", "-")


def test_the_shell_completes_each_commands_options(tmp_path: Path) -> None:
    out = tmp_path / "completions"

    def complete(line: str) -> list[str]:
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}
        done = subprocess.run([command_path(line.split()[0])], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return out.read_text().split()

    assert complete("oarstat --fu") == ["--full"]
    assert complete("oarsub --arr") == ["--array", "--array-param-file"]
    assert set(complete("oar-celery d")) == {"db", "doctor", "down"}
    shellcode = subprocess.run([command_path("oar-celery"), "completion"], capture_output=True, text=True,
                               timeout=60).stdout
    for command in ("oarsub", "oarstat", "oar-celery"):
        assert re.search(rf"complete .*\b{re.escape(command)}\b", shellcode), command
