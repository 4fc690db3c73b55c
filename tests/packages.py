"""Tools the tests drive (tmux, chromium) come from Debian's packages, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(name: str, package: str | None = None, timeout: float = 900) -> str:
    """The path of ``name``, installed with apt-get (as root) if needed; the test is skipped where it cannot be."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{name} is not installed and cannot be installed here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package or name]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"cannot install {name}: {done.stderr.strip()[-300:]}")
    return found
