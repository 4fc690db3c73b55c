"""What every benchmark shares: its own services, the machine's description, the report.

Each run gets a fresh PostgreSQL database and Redis database 13 (flushed at
start), so a benchmark never reads the messages or rows of a test run. The
environment is set in ``os.environ`` before ``oar_celery`` is imported, so the
harness process itself (which times modules in-process and submits through the
client API) talks to the same cluster as the workers it starts.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

from oar_celery.db import scratch

PG_SERVER = os.environ.get("OAR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("OAR_BENCH_REDIS", "redis://127.0.0.1:6379")
STATE_DIR = os.environ.get("OAR_BENCH_DIR")  # read now: a cluster's set-up drops the caller's OAR_* variables
REDIS_DB = int(os.environ.get("OAR_BENCH_REDIS_DB", "13"))  # another number: a run of its own beside another
REPORT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def state_root() -> str | None:
    """Where benchmark clusters keep their state: ``OAR_BENCH_DIR``, else ``/dev/shm``, else the temp dir.

    The state directory holds the nodes' job directories and the jobs' output
    files, some eight new files per job. On ext4, creating a file in a crowded
    block group can cost half a millisecond of kernel time (the inode search
    skips recently deleted inodes), against some 20 µs elsewhere on the same
    disk; on tmpfs the figures measure the job manager, not where the
    temporary directory happens to sit.
    """
    if STATE_DIR:
        return STATE_DIR
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def create_database() -> str:
    """A new empty PostgreSQL database for one benchmark; its SQLAlchemy URL."""
    return scratch.create_database(PG_SERVER, prefix="oar_bench")


def drop_database(url: str) -> None:
    scratch.drop_database(PG_SERVER, url)


def redis_url() -> str:
    return f"{REDIS_SERVER}/{REDIS_DB}"


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(redis_url()).flushdb()


def bench_env(database_url: str, state_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of the benchmark's cluster, without any ``OAR_*`` of the caller.

    An empty ``database_url`` leaves the cluster on its default database (SQLite in ``state_dir``).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(
        OAR_STATE_DIR=str(state_dir),
        OAR_BROKER_URL=redis_url(),
        OAR_CONFIG_FILE=str(state_dir / "absent.conf"),
        OAR_FLOWER_PORT="0",
        OAR_API_PORT="0",  # a benchmark that wants them names its own ports
        OAR_METRICS_PORT="0",
        OAR_LOG_LEVEL="WARNING",
    )
    if database_url:  # none: the default, SQLite in the state directory
        env["OAR_DATABASE_URL"] = database_url
    if os.geteuid() == 0:
        # jobs run as the benchmark's user, as on ``oar-celery up``'s one-machine cluster; node
        # workers started by the harness itself (bench/wide_worker.py) would refuse root's jobs
        env["OAR_ALLOW_ROOT_JOBS"] = "yes"
    env.update(overrides)
    return env


def adopt(env: dict[str, str]) -> None:
    """Make this process use the benchmark's settings (before oar_celery reads them)."""
    for key in [k for k in os.environ if k.startswith("OAR_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("OAR_")})
    import sys

    if "oar_celery.config" in sys.modules:
        from oar_celery.config import settings

        settings.cache_clear()


def machine() -> str:
    memory = "unknown"
    try:
        with open("/proc/meminfo") as meminfo:
            memory = f"{int(meminfo.readline().split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = f"load average {os.getloadavg()[0]:.2f}"
    where = state_root() or "the temp dir"
    return (
        f"nproc {os.cpu_count()}, memory {memory}, {load}, Python {platform.python_version()}, "
        f"{platform.machine()}, cluster state in {where}"
    )


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """Median, p95 and max of a sample (p95 by nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return {"median": float("nan"), "p95": float("nan"), "max": float("nan")}
    rank = max(0, min(len(ordered) - 1, int(round(0.95 * len(ordered))) - 1))
    return {"median": statistics.median(ordered), "p95": ordered[rank], "max": ordered[-1]}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def append_report(heading: str, markdown: str, command: str, path: Path = REPORT) -> None:
    """Append a dated run under ``## <heading>`` (created if needed), leaving other sections alone."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n### {stamp}\n\n`{command}` — {machine()}\n\n{markdown}\n"
    title = f"## {heading}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if title not in text:
        text = text.rstrip("\n") + f"\n\n{title}\n" + entry
    else:
        start = text.index(title)
        following = text.find("\n## ", start + len(title))
        end = len(text) if following < 0 else following
        text = text[:end].rstrip("\n") + "\n" + entry + text[end:]
    path.write_text(text)


def report(heading: str, markdown: str, command: str, *, write: bool = True) -> None:
    print(f"\n## {heading}\n\n{markdown}\n", flush=True)
    if write:
        append_report(heading, markdown, command)
