"""Throwaway accounts for the security tests, created with useradd and removed after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _can_add_users() -> str | None:
    if os.geteuid() != 0:
        return "creating throwaway accounts needs root"
    if not shutil.which("useradd") or not shutil.which("groupadd"):
        return "useradd/groupadd are not installed"
    return None


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, str]]:
    """Two users, ``alice`` and ``bob`` by role; alice also belongs to an extra group."""
    reason = _can_add_users()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    group = f"oarsg{tag}"
    names = {"alice": f"oarsa{tag}", "bob": f"oarsb{tag}", "group": group}
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-G", group, names["alice"]], check=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", names["bob"]], check=True)
    try:
        yield names
    finally:
        for role in ("alice", "bob"):
            subprocess.run(["userdel", names[role]], check=False, capture_output=True)
        subprocess.run(["groupdel", group], check=False, capture_output=True)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every account may write (pytest's own are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="oar-sec-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)
