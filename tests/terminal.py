"""A real terminal for the tests: a tmux session of its own, driven with send-keys and read with capture-pane.

tmux is installed from Debian's packages when it is missing (as the browser
tests install chromium). Each terminal has a tmux server of its own (``-L``),
so that tests never see each other's panes, and starts ``bash --norc`` with the
cluster's environment and a prompt of its own.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.packages import debian_tool

PROMPT = "top$ "


def tmux() -> str:
    """The tmux binary, installed with apt-get if needed."""
    return debian_tool("tmux", timeout=600)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("tmux is not installed and cannot be installed here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "-q", "tmux"], env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(["apt-get", "install", "-y", "-q", "tmux"], env=env, capture_output=True, text=True,
                              timeout=600)
    found = shutil.which("tmux")
    if not found:
        pytest.skip(f"cannot install tmux: {done.stderr.strip()[-300:]}")
    return found


class Terminal:
    """One tmux pane running bash in ``cwd`` with ``env``."""

    def __init__(self, env: dict[str, str], cwd: Path, *, bin_dir: Path) -> None:
        self.binary = tmux()
        self.socket = f"oartest-{uuid.uuid4().hex[:8]}"
        script = cwd / f".{self.socket}.rc"
        lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()
                 if name.startswith("OAR_") or name in ("PYTHONPATH", "LANG")]
        lines += [f"export PATH={shlex.quote(str(bin_dir))}:/usr/local/bin:/usr/bin:/bin",
                  f"cd {shlex.quote(str(cwd))}", f"PS1={shlex.quote(PROMPT)}", "export TERM=xterm"]
        script.write_text("\n".join(lines) + "\n")
        self._tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "50",
                   f"env -i HOME={os.environ.get('HOME', '/root')} bash --rcfile {shlex.quote(str(script))} -i")
        self.wait_for(PROMPT, timeout=15)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run([self.binary, "-L", self.socket, *args], capture_output=True, text=True, timeout=15)
        return done.stdout

    def type(self, text: str) -> None:
        """Type a line and press Enter."""
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def resize(self, columns: int, rows: int) -> None:
        self._tmux("resize-window", "-t", "t", "-x", str(columns), "-y", str(rows))

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def wait_for(self, text: str, timeout: float = 60, *, count: int = 1) -> str:
        """The screen once ``text`` shows (``count`` times); the test fails with the screen otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not shown after {timeout} s; the screen:\n{self.screen()}")

    def clear(self) -> None:
        self._tmux("send-keys", "-t", "t", "clear", "Enter")
        self._tmux("clear-history", "-t", "t")
        time.sleep(0.2)
        self._tmux("clear-history", "-t", "t")

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def close(self) -> None:
        subprocess.run([self.binary, "-L", self.socket, "kill-server"], capture_output=True, timeout=15)
