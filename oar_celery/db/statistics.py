"""The planner's statistics of the job tables, refreshed after a burst of submissions.

PostgreSQL plans each statement from statistics that autovacuum refreshes
once a tenth of a table has changed, and looks at most once a minute. A
burst of a thousand submissions leaves it believing that no job waits: the
conditional update that moves the jobs a round starts (``Waiting`` →
``toLaunch``, by job id) then walks the index of waiting jobs once for
every job it moves, 3 ms for 8 jobs among 2,000 waiting, growing with the
queue. The submission that inserted a burst has the tables that grew with
it (:data:`TABLES`) analyzed, by a thread of its process: its answer does
not wait for it.

The refresh samples :data:`SAMPLE_TARGET` × 300 rows of each table instead
of the default 30,000: what the plans need is the share of each state and the
tables' sizes, which a small sample gives as well. Its cost then stays the
same with a million finished jobs in history (0.24 s against 3.4 s at the
default, on a table of five million state log entries). The share of each
state is the exception: behind a million finished jobs, a burst of 500 fills
14 of the table's 27,000 pages, which a sample of 3,000 rows misses one time
in five. The planner then believes that no job waits and reads the whole
queue through the state index, sorting it, to keep the quick round's first
few jobs (2–3 ms for 2,000 waiting jobs every round, against 0.2 ms through
``ix_jobs_waiting``). The ``state`` column alone is therefore analyzed again
with :data:`STATE_TARGET` (30,000 rows, 0.15 s on a million jobs), a sample
that holds a few dozen of 2,000 waiting jobs among a million.

:data:`BURST`: jobs inserted by one transaction that call for it.
:data:`INTERVAL`: seconds a process lets pass between two of its refreshes,
so a stream of bursts costs one ``ANALYZE`` every few seconds at most.
"""

from __future__ import annotations

import logging
import threading
import time

from oar_celery.db.session import get_engine

logger = logging.getLogger(__name__)

BURST = 200
INTERVAL = 5.0
#: ``default_statistics_target`` of the refresh (PostgreSQL's default: 100); autovacuum keeps the default.
SAMPLE_TARGET = 10
#: The target of the second pass over ``jobs.state``: PostgreSQL's default, enough to see a few hundred live jobs.
STATE_TARGET = 100
#: The tables a submission adds rows to and whose rows every cycle or round reads by job: the
#: scheduler's load of the waiting jobs' requests joins the last four with ``jobs`` (on a burst
#: without statistics, each join with no row to find still took 13 ms for 10,000 waiting jobs).
TABLES = ("jobs", "job_state_logs", "moldable_job_descriptions", "job_resource_groups",
          "job_resource_descriptions", "job_types", "job_dependencies")

_last_refresh = float("-inf")


def refresh_after_burst(inserted: int) -> bool:
    """``ANALYZE`` the :data:`TABLES` in the background when ``inserted`` new jobs make a burst; whether it will."""
    global _last_refresh
    if inserted < BURST or time.monotonic() - _last_refresh < INTERVAL:
        return False
    if get_engine().dialect.name != "postgresql":
        return False
    _last_refresh = time.monotonic()
    threading.Thread(target=analyze, args=(inserted,), name="oar-analyze", daemon=True).start()
    return True


def analyze(inserted: int) -> None:
    """The refresh itself, in the caller's thread (``inserted`` is only logged)."""
    started = time.perf_counter()
    try:
        with get_engine().connect() as connection:
            connection.exec_driver_sql(f"SET LOCAL default_statistics_target = {SAMPLE_TARGET}")
            connection.exec_driver_sql(f"ANALYZE {', '.join(TABLES)}")
            connection.exec_driver_sql(f"SET LOCAL default_statistics_target = {STATE_TARGET}")
            connection.exec_driver_sql("ANALYZE jobs (state)")
            connection.commit()
    except Exception:  # noqa: BLE001 - statistics only make plans better; autovacuum still comes
        logger.exception("ANALYZE after a burst of submissions failed")
        return
    logger.info("tables analyzed after %d submissions in %.3f s", inserted, time.perf_counter() - started)
