"""``oar-celery keys``: the keys of signed node messages and of job shells, private, made once; a bad node name
in one line."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.cluster import command_path


def keys(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OAR_")}
    env.update(OAR_STATE_DIR=str(tmp_path), OAR_CONFIG_FILE=str(tmp_path / "absent.conf"))
    return subprocess.run([command_path("oar-celery"), "keys", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_keys_are_made_for_the_nodes_named_and_kept_on_a_second_run(tmp_path: Path) -> None:
    done = keys(tmp_path, "--nodes", "node[1-2]")
    assert done.returncode == 0, done.stderr
    assert "3 key(s) made" in done.stdout
    directory = tmp_path / "keys"
    made = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.key") if p.parent.name != "tls")
    assert made == ["head.key", "nodes/node1.key", "nodes/node2.key"]
    tls = sorted(p.name for p in (directory / "tls").iterdir())
    assert tls == ["ca.key", "ca.pem", "jobshell.key", "node1.key", "node1.pem", "node2.key", "node2.pem"]
    assert stat.S_IMODE((directory / "tls" / "jobshell.key").stat().st_mode) == 0o600
    assert all(stat.S_IMODE((directory / name).stat().st_mode) == 0o600 for name in made)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    first = (directory / "nodes" / "node1.key").read_text()
    again = keys(tmp_path, "--nodes", "node1,node3")
    assert again.returncode == 0 and "1 key(s) made" in again.stdout
    assert (directory / "nodes" / "node1.key").read_text() == first


def test_a_name_that_is_no_node_is_refused_in_one_line(tmp_path: Path) -> None:
    for bad in ("../../etc/x", "node[1-"):
        done = keys(tmp_path, "--nodes", bad)
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "keys").exists()  # refused before anything was made
