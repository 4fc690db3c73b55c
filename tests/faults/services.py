"""Private Redis and PostgreSQL servers that a fault test may stop and start.

The machine's own servers are shared with other test runs: restarting them
would break those runs. So a test that restarts a service starts its own, on
a free port of the loopback, with its data in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from glob import glob
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class PrivateRedis:
    """One redis-server, no persistence: a restart loses every message, as after a crash."""

    def __init__(self, workdir: Path, password: str = "") -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, pause: float = 1.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()


def _pg_bin() -> Path | None:
    found = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """One PostgreSQL cluster made by initdb, run as the ``postgres`` account."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's root-only temporary tree: the postgres account must reach it.
        self.home = Path(tempfile.mkdtemp(prefix="oar-fault-pg-"))
        self.data = self.home / "pgdata"
        self.bin = _pg_bin()

    @staticmethod
    def unavailable() -> str | None:
        """Why this machine cannot run a private PostgreSQL, or None."""
        if _pg_bin() is None:
            return "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.geteuid() != 0:
            return "starting a private PostgreSQL needs root (to run it as the postgres account)"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres account on this machine"
        return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/oar"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        shutil.chown(self.home, "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "oar")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "start",
                          "-l", str(self.data / "server.log"))

    def stop(self, mode: str = "immediate") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, pause: float = 2.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
