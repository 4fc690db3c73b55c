"""``oarsub -I`` on an idle cluster: how long a user waits from Enter to the job's prompt.

Each run starts ``oarsub -I -l /core=1`` on a terminal of its own (a pty, as
a user's), times the ``Connect to OAR job`` line and the first prompt of the
job's shell after it (its output ending in ``$ ``, ``# `` or ``> ``), then
types ``exit`` and times ``oarsub``'s end. The cluster is 2 nodes × 2 cores with nothing else running; runs follow each
other, each job ended before the next starts.
"""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import time

from bench.common import markdown_table, report
from bench.localcluster import BenchCluster, command

RUNS = 20


def _read_until(fd: int, wanted: bytes | tuple[bytes, ...], seen: bytearray, timeout: float = 60) -> float:
    """Read the terminal until ``wanted`` shows (a tuple: until the output ends with one); the time it showed."""
    deadline = time.monotonic() + timeout
    start = len(seen)

    def shown() -> bool:
        if isinstance(wanted, tuple):
            return len(seen) > start and bytes(seen).rstrip(b"\r\n").endswith(wanted)
        return wanted in seen[start:]

    while not shown():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{wanted!r} not shown; the terminal said: {bytes(seen)[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return time.perf_counter()


def one_run(bench: BenchCluster) -> tuple[float, float, float]:
    """(to the connection line, to the prompt, exit to oarsub's end), in seconds."""
    master, slave = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen([command("oarsub"), "-I", "-l", "/core=1,walltime=0:05:00"], env=bench.env,
                               cwd=bench.workdir, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    try:
        connected = _read_until(master, b"Connect to OAR job", seen)
        prompt = _read_until(master, (b"$ ", b"# ", b"> "), seen)
        os.write(master, b"exit 0\n")
        typed = time.perf_counter()
        process.wait(60)
        ended = time.perf_counter()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return connected - started, prompt - started, ended - typed


def local_shell() -> float:
    """The same shell started here on a pty, to its prompt: the part of the wait that is the shell's own."""
    master, slave = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-i"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                               cwd="/tmp")
    os.close(slave)
    try:
        prompt = _read_until(master, (b"$ ", b"# ", b"> "), bytearray())
        os.write(master, b"exit\n")
        process.wait(30)
    finally:
        os.close(master)
    return prompt - started


def main(args: list[str], *, write: bool = True) -> None:
    runs = 5 if "--quick" in args else RUNS
    with BenchCluster(2, 2) as bench:
        one_run(bench)  # warm-up: the first job pays the caches of every process
        results = [one_run(bench) for _ in range(runs)]
    local = sorted(local_shell() for _ in range(runs))
    connect = sorted(r[0] for r in results)
    prompt = sorted(r[1] for r in results)
    leave = sorted(r[2] for r in results)

    def row(name: str, values: list[float]) -> list[object]:
        return [name, f"{statistics.median(values) * 1000:.0f} ms", f"{values[0] * 1000:.0f} ms",
                f"{values[-1] * 1000:.0f} ms"]

    table = markdown_table(["step", "median", "min", "max"], [
        row("Enter → `Connect to OAR job ...`", connect),
        row("Enter → the job shell's prompt", prompt),
        row("`exit` → `oarsub` has exited", leave),
        row("(for scale) `bash -i` started locally on a pty → its prompt", local),
    ])
    text = (f"{runs} runs of `oarsub -I -l /core=1` on an idle cluster of 2 nodes × 2 cores, one after the other, "
            "on a pty (the job's shell: bash, as root, reading its `.bashrc`).\n\n" + table)
    report("Interactive jobs", text, "python -m bench interactive " + " ".join(args), write=write)
