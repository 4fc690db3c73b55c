"""A benchmark cluster: ``oar-celery up`` on a fresh database, its processes' memory, its jobs.

The cluster is started by the project's own admin command, exactly as a user
would start it, and stopped with ``oar-celery down``. Memory is sampled from
``/proc`` (resident set of each process group: the head's pool children count
with the head), because that is what an admin's ``top`` shows.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import adopt, bench_env, create_database, drop_database, flush_redis, state_root

BIN = Path(sys.executable).parent
FINAL = ("Terminated", "Error")


def command(name: str) -> str:
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


def group_pids(leader: int) -> list[int]:
    """The processes of one process group (a cluster process and its pool children)."""
    found = subprocess.run(["pgrep", "-g", str(leader)], capture_output=True, text=True).stdout.split()
    return sorted({leader, *(int(pid) for pid in found)})


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: each shared page counted once across the processes that map it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class MemorySampler:
    """Peak resident memory of named process groups, sampled every ``period`` seconds.

    A group member counts from its second sample on: a child the worker has
    just ``vfork``ed shares the worker's memory, and is still in its group,
    for the microseconds before it leaves the group and runs the job; caught
    there, it doubled the node worker's figure.

    ``peaks`` sums the members' RSS (what ``top`` shows, pages a prefork
    child shares with its parent counted in both); ``pss_peaks`` sums their
    PSS, each page counted once: the memory the group really holds.
    """

    leaders: dict[str, int]
    period: float = 0.25
    peaks: dict[str, int] = field(default_factory=dict)
    pss_peaks: dict[str, int] = field(default_factory=dict)
    _members: dict[str, set[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for name, leader in self.leaders.items():
            members = set(group_pids(leader))
            lasting = {leader} | (members & self._members.get(name, members))
            self._members[name] = members
            total = sum(rss_kib(pid) for pid in lasting)
            self.peaks[name] = max(self.peaks.get(name, 0), total)
            pss = sum(pss_kib(pid) for pid in lasting)
            self.pss_peaks[name] = max(self.pss_peaks.get(name, 0), pss)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()

    def mib(self, name: str) -> float:
        return self.peaks.get(name, 0) / 1024

    def pss_mib(self, name: str) -> float:
        return self.pss_peaks.get(name, 0) / 1024


class BenchCluster:
    """A cluster of ``nodes`` × ``cores`` on its own database and Redis db.

    ``sqlite``: no ``OAR_DATABASE_URL``, so the cluster keeps its database in
    its state directory, as a user's first ``oar-celery up`` does.
    """

    def __init__(
        self, nodes: int = 4, cores: int = 4, *, start: bool = True, sqlite: bool = False, **overrides: str
    ) -> None:
        self.nodes, self.cores = nodes, cores
        self.tmp = tempfile.TemporaryDirectory(prefix="oar-bench-", dir=state_root())
        self.state = Path(self.tmp.name)
        self.workdir = self.state / "work"
        self.workdir.mkdir()
        flush_redis()
        self.sqlite = sqlite
        self.database_url = f"sqlite:///{self.state / 'oar.db'}" if sqlite else create_database()
        self.env = bench_env("" if sqlite else self.database_url, self.state, **overrides)
        adopt(self.env)
        self.started = False
        self.engine = None
        if start:
            self.up()

    # processes --------------------------------------------------------------------------------
    def admin(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command("oar-celery"), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def init_database(self) -> None:
        result = self.admin("db", "init")
        if result.returncode != 0:
            raise RuntimeError(f"db init failed: {result.stderr}")

    def up(self) -> None:
        result = self.admin(
            "up", "--nodes", str(self.nodes), "--cores", str(self.cores), "--flower-port", "0",
            "--detach", "--timeout", "90",
        )
        if result.returncode != 0:
            raise RuntimeError(f"cluster did not start: {result.stdout}\n{result.stderr}")
        self.started = True

    def processes(self) -> dict[str, int]:
        import json

        return {e["name"]: e["pid"] for e in json.loads((self.state / "cluster.json").read_text())}

    def redis_pids(self) -> list[int]:
        """The benchmark's Redis server (``OAR_BENCH_REDIS``), as the CPU meter counts it."""
        import redis

        from bench.common import redis_url

        return [int(redis.Redis.from_url(redis_url()).info("server")["process_id"])]

    def backend_pids(self) -> list[int]:
        """The PostgreSQL backends serving the cluster's database, the harness's own left out."""
        if self.sqlite:
            return []
        return [int(pid) for (pid,) in self.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )]

    def memory(self) -> MemorySampler:
        procs = self.processes()
        return MemorySampler({name: procs[name] for name in ("head", "beat", "node1") if name in procs})

    def close(self) -> None:
        if self.started:
            self.admin("down", timeout=90)
        if self.engine is not None:
            self.engine.dispose()
        if not self.sqlite:
            with contextlib.suppress(Exception):
                drop_database(self.database_url)
        self.tmp.cleanup()

    def __enter__(self) -> BenchCluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # database ---------------------------------------------------------------------------------
    def db(self):  # type: ignore[no-untyped-def]
        from sqlalchemy import create_engine

        if self.engine is None:
            self.engine = create_engine(self.database_url)
        return self.engine

    def query(self, sql: str, **params: object) -> list[tuple]:
        from sqlalchemy import text

        with self.db().connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]

    def execute(self, sql: str, **params: object) -> None:
        from sqlalchemy import text

        with self.db().begin() as connection:
            connection.execute(text(sql), params)

    def wait_final(self, job_ids: Iterable[int], timeout: float = 300, poll: float = 0.1) -> dict[int, str]:
        """Wait until every job is Terminated or Error; their states (unfinished ones included on timeout)."""
        ids = sorted(set(job_ids))
        low, high = ids[0], ids[-1]
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(
                "SELECT state, count(*) FROM jobs WHERE job_id BETWEEN :a AND :b GROUP BY state", a=low, b=high
            )
            counts = dict(rows)
            done = sum(counts.get(state, 0) for state in FINAL)
            if done >= len(ids) or time.monotonic() > deadline:
                return counts
            time.sleep(poll)

    def last_stop(self, job_ids: Iterable[int]) -> float:
        ids = sorted(job_ids)
        return float(
            self.query("SELECT max(stop_time) FROM jobs WHERE job_id BETWEEN :a AND :b", a=ids[0], b=ids[-1])[0][0]
        )


@contextlib.contextmanager
def cluster(nodes: int = 4, cores: int = 4, **overrides: str) -> Iterator[BenchCluster]:
    bench = BenchCluster(nodes, cores, **overrides)
    try:
        yield bench
    finally:
        bench.close()
