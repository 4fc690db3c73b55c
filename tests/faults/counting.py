"""Counting what a fault did to the jobs: accepted, finished, lost, launched twice.

Every fault test's job appends its id to a launches file, so a second start
of the same job shows up as a repeated line, whatever the database says.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster import FINAL, LocalCluster

FLOOD = Path(__file__).with_name("flood.py")


@dataclass
class Counts:
    """The verdict of one fault case; ``lost`` and ``twice`` must be empty."""

    case: str
    accepted: int = 0
    finished: int = 0
    lost: list[int] = field(default_factory=list)
    twice: list[int] = field(default_factory=list)
    launched: int = 0

    def line(self) -> str:
        return (f"{self.case}: accepted={self.accepted} finished={self.finished} lost={len(self.lost)} "
                f"launched={self.launched} launched_twice={len(self.twice)}")

    def check(self) -> None:
        assert not self.lost, f"{self.line()}; lost jobs {self.lost[:20]}"
        assert not self.twice, f"{self.line()}; launched twice {self.twice[:20]}"


#: Every case's counts, printed at the end of the run.
RESULTS: list[Counts] = []


def launch_command(launches: Path, seconds: float = 0) -> str:
    """A job that records its start, then works for ``seconds``."""
    sleep = f"; sleep {seconds}" if seconds else ""
    return f"echo $OAR_JOB_ID >> {launches}{sleep}"


def launches_of(launches: Path) -> Counter[int]:
    if not launches.exists():
        return Counter()
    return Counter(int(line) for line in launches.read_text().split() if line.strip().isdigit())


def start_flood(cluster: LocalCluster, count: int, command: str, threads: int = 16) -> subprocess.Popen[str]:
    """Submit ``count`` jobs in the background; accepted ids come on its stdout."""
    env = {**cluster.env, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.Popen(
        [sys.executable, str(FLOOD), str(count), command, "--threads", str(threads)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp",
    )


def flood_ids(flood: subprocess.Popen[str], timeout: float = 180) -> list[int]:
    """The accepted ids; the refusals' distinct reasons go to stderr for the record."""
    out, err = flood.communicate(timeout=timeout)
    reasons = Counter(line.split(" (")[0] for line in err.splitlines() if line.startswith("refused"))
    for reason, times in reasons.most_common(5):
        print(f"flood: {times} x {reason}", file=sys.stderr)
    return [int(line) for line in out.split() if line.isdigit()]



def wait_submitted(cluster: LocalCluster, count: int, timeout: float = 60) -> None:
    """Wait until at least ``count`` jobs exist: the fault then hits mid-flood."""
    cluster.wait_until(lambda: (cluster.scalar("SELECT count(*) FROM jobs") or 0) >= count, timeout,
                       f"{count} jobs submitted")


def settle(cluster: LocalCluster, accepted: list[int], timeout: float) -> dict[int, str]:
    """Wait for every job to reach a final state, or the deadline; job id → state."""
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        states = dict(cluster.query("SELECT job_id, state FROM jobs"))
        if all(states.get(job_id) in FINAL for job_id in accepted) and all(s in FINAL for s in states.values()):
            break
        time.sleep(0.5)
    return states


def count(case: str, cluster: LocalCluster, accepted: list[int], launches: Path, timeout: float = 120) -> Counts:
    """Wait for the jobs to settle, then count; recorded for the summary."""
    states = settle(cluster, accepted, timeout)
    seen = launches_of(launches)
    counts = Counts(
        case=case,
        accepted=len(accepted),
        finished=sum(1 for job_id in accepted if states.get(job_id) in FINAL),
        lost=[job_id for job_id in accepted if states.get(job_id) not in FINAL],
        twice=sorted(job_id for job_id, n in seen.items() if n > 1),
        launched=len(seen),
    )
    RESULTS.append(counts)
    print(counts.line(), file=sys.stderr)
    return counts


def terminated(cluster: LocalCluster, job_ids: list[int]) -> int:
    rows = cluster.query("SELECT count(*) FROM jobs WHERE job_id = ANY(:ids) AND state = 'Terminated'", ids=job_ids)
    return int(rows[0][0])


