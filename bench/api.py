"""The REST API's throughput: ``GET /jobs?state=Running`` with 10,000 running jobs, and a metrics scrape.

The jobs are bulk-inserted with SQL into a fresh database (no cluster runs:
the listing only reads), the API runs as ``oar-celery api`` does (uvicorn, one
process), and client threads with keep-alive connections ask for the same
page for a fixed time. The client shares the machine's CPUs with the server.
The scrape part times the head's collector on a database holding a million
finished jobs: its first scrape, then scrapes with new jobs between them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time

from bench.common import markdown_table, quantiles, report
from bench.history import fill_history
from bench.localcluster import BenchCluster

RUNNING = 10_000
HOSTS, CORES = 64, 16
THREADS = (1, 4)
SECONDS = 10.0
SCRAPE_HISTORY = 1_000_000
QUICK = (2_000, 3.0, 50_000)

_RUNNING = [
    """INSERT INTO jobs (job_id, array_id, array_index, initial_request, job_type, state, reservation, message,
        scheduler_info, job_user, project, job_group, command, queue_name, launching_directory, submission_time,
        start_time, stop_time, assigned_moldable_job, checkpoint, checkpoint_signal, resubmit_job_id, suspended,
        suspended_time)
       SELECT g, g, 1, 'oarsub sleep 3600', 'PASSIVE', 'Running', 'None', '', '', 'user' || (g % 50), 'default',
        '', 'sleep 3600', 'default', '/home/bench', :t0 + g * 0.01, :t0 + 60, 0, g, 0, 12, 0, 'NO', 0
       FROM generate_series(1, :n) AS g""",
    """INSERT INTO moldable_job_descriptions (moldable_id, moldable_job_id, moldable_walltime, moldable_index)
       SELECT g, g, 7200, 'CURRENT' FROM generate_series(1, :n) AS g""",
    """INSERT INTO assigned_resources (moldable_job_id, resource_id, assigned_resource_index)
       SELECT g, 1 + g % :r, 'CURRENT' FROM generate_series(1, :n) AS g""",
]


def fill_running(bench: BenchCluster, jobs: int, resources: int) -> None:
    t0 = time.time() - 3600
    for statement in _RUNNING:
        bench.execute(statement, n=jobs, t0=t0, r=resources)
    for table, column in (("jobs", "job_id"), ("moldable_job_descriptions", "moldable_id")):
        bench.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) "
                      f"FROM {table}))")
    bench.execute("ANALYZE")


def add_resources(bench: BenchCluster) -> int:
    result = bench.admin("resources", "add", f"node[1-{HOSTS}]", "--cores", str(CORES))
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return HOSTS * CORES


def serve(bench: BenchCluster, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "oar_celery.api", "--port", str(port)], env=bench.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/version", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the API did not start")


def load(url: str, threads: int, seconds: float) -> tuple[int, list[float], int]:
    """Requests done, their latencies and the failures, by ``threads`` keep-alive clients for ``seconds``."""
    import httpx

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        bad = 0
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = http.get(url)
                mine.append(time.perf_counter() - started)
                if answer.status_code != 200 or len(answer.json()["items"]) == 0:
                    bad += 1
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(latencies), latencies, failures[0]


def bench_listing(jobs: int, seconds: float) -> str:
    from tests.faults.services import free_port

    with BenchCluster(start=False) as bench:
        bench.init_database()
        fill_running(bench, jobs, add_resources(bench))
        port = free_port()
        server = serve(bench, port)
        try:
            rows = []
            for path in ("/jobs?state=Running", "/jobs?state=Running&details=1&limit=100"):
                for threads in THREADS:
                    count, latencies, failures = load(f"http://127.0.0.1:{port}{path}", threads, seconds)
                    q = quantiles(latencies)
                    rows.append([f"`GET {path}`", threads, f"{count / seconds:.0f}", f"{q['median'] * 1000:.1f}",
                                 f"{q['p95'] * 1000:.1f}", failures])
        finally:
            server.terminate()
            server.wait(timeout=10)
    header = ["request (page of 500 by default)", "client threads", "requests/s", "median ms", "p95 ms", "failures"]
    return (f"{jobs:,} running jobs on {HOSTS} × {CORES} resources; {seconds:g} s per line.\n\n"
            + markdown_table(header, rows))


def bench_scrape(history: int) -> str:
    with BenchCluster(start=False) as bench:
        bench.init_database()
        add_resources(bench)
        fill_history(bench, history)
        from oar_celery.head.metrics import OarCollector

        collector = OarCollector()
        times = []
        for _ in range(6):
            started = time.perf_counter()
            samples = sum(len(family.samples) for family in collector.collect())
            times.append(time.perf_counter() - started)
        top = bench.query("SELECT max(job_id) FROM jobs")[0][0]
        fresh = 1_000
        bench.execute(
            """INSERT INTO jobs (job_id, array_id, array_index, initial_request, job_type, state, reservation,
                message, scheduler_info, job_user, project, job_group, command, queue_name, launching_directory,
                submission_time, start_time, stop_time, assigned_moldable_job, checkpoint, checkpoint_signal,
                resubmit_job_id, suspended, suspended_time)
               SELECT :top + g, :top + g, 1, '', 'PASSIVE', 'Waiting', 'None', '', '', 'bench', 'default', '',
                'true', 'default', '/tmp', :now, 0, 0, 0, 0, 12, 0, 'NO', 0 FROM generate_series(1, :n) AS g""",
            top=top, now=time.time(), n=fresh)
        started = time.perf_counter()
        list(collector.collect())
        after_new = time.perf_counter() - started
    rows = [["first scrape (counters start)", f"{times[0] * 1000:.1f}"],
            ["next scrapes, median of 5", f"{statistics.median(times[1:]) * 1000:.1f}"],
            [f"a scrape after {fresh:,} new jobs", f"{after_new * 1000:.1f}"]]
    return (f"{history:,} finished jobs (5 state log entries each) in the database, {HOSTS * CORES} resources; "
            f"{samples} samples per scrape, read in-process by the head's collector.\n\n"
            + markdown_table(["scrape", "ms"], rows))


GANTT_HOSTS = 320  # x 16 cores: 5,120 resources
GANTT_JOBS = 2_000


def bench_gantt() -> str:
    """``GET /gantt`` and the Gantt page's drawing in headless Chromium, with thousands of resources."""
    import httpx

    from tests.api.browser import Browser
    from tests.faults.services import free_port

    with BenchCluster(start=False) as bench:
        bench.init_database()
        bench.admin("resources", "add", f"node[1-{GANTT_HOSTS}]", "--cores", str(CORES))
        fill_running(bench, GANTT_JOBS, GANTT_HOSTS * CORES)
        port = free_port()
        server = serve(bench, port)
        try:
            times = []
            for _ in range(10):
                started = time.perf_counter()
                size = len(httpx.get(f"http://127.0.0.1:{port}/gantt", timeout=60).content)
                times.append(time.perf_counter() - started)
            draws = {}
            browser = Browser()
            try:
                for page in ("drawgantt", "monika"):
                    started = time.perf_counter()
                    browser.open(f"http://127.0.0.1:{port}/{page}")
                    browser.wait_for("Number((document.getElementById('summary') || {dataset: {}}).dataset.draws) > 0",
                                     timeout=120)
                    draws[page] = time.perf_counter() - started
                shapes = browser.evaluate("document.querySelectorAll('.cell').length")
            finally:
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    rows = [["`GET /gantt`, median of 10", f"{statistics.median(times) * 1000:.0f}", f"{size / 1024:.0f} kB"],
            ["the Gantt page: load, fetch and draw (Chromium)", f"{draws['drawgantt'] * 1000:.0f}", ""],
            ["the node grid: load, fetch and draw (Chromium)", f"{draws['monika'] * 1000:.0f}", f"{shapes} cells"]]
    return (f"{GANTT_HOSTS * CORES:,} resources on {GANTT_HOSTS} hosts, {GANTT_JOBS:,} running jobs.\n\n"
            + markdown_table(["what", "ms", "size"], rows))


def main(args: list[str], *, write: bool = True) -> None:
    jobs, seconds, history = (QUICK[0], QUICK[1], QUICK[2]) if "--quick" in args else (RUNNING, SECONDS,
                                                                                        SCRAPE_HISTORY)
    text = (bench_listing(jobs, seconds) + "\n\nMetrics scrape:\n\n" + bench_scrape(history)
            + "\n\nWeb views:\n\n" + bench_gantt())
    report("REST API and metrics", text, "python -m bench api " + " ".join(args), write=write)


if __name__ == "__main__":
    main(sys.argv[1:], write="--no-write" not in sys.argv)
