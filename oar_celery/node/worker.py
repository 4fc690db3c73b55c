"""How a node worker is started, for the admin CLI (``oar-celery worker node``).

The options are the design's, not tuning. The ``solo`` pool runs each task
in the worker's own thread: every node task returns at once (jobs are watched
by a watcher thread, not by tasks), and a pool of threads only added
hand-offs of the interpreter lock, a third of a short job's cost on the node.
Prefetch one with the fair strategy, so a busy worker never holds messages,
and only the node's own queue. Gossip and mingle are off: with hundreds of
nodes their broadcasts cost the broker much and give a node nothing (it
shares no state with its peers). The worker's name is ``node@<hostname>``, the
same at every restart, so Flower shows each node once.
"""

from __future__ import annotations

import sys

from oar_celery.celery_app import NODE_TASK_MODULES, node_queue
from oar_celery.config import Settings


def node_worker_argv(hostname: str, config: Settings) -> list[str]:
    """The full command line of the worker serving node ``hostname``."""
    return [
        sys.executable,
        "-m",
        "oar_celery.celery_main",  # Celery's worker command alone (no REPL, no plugins: some 14 MB less)
        "worker",
        "-Q",
        node_queue(hostname),
        "-n",
        f"node@{hostname}",
        "--pool",
        "solo",
        "--prefetch-multiplier",
        "1",
        "-O",
        "fair",
        "-I",
        ",".join(NODE_TASK_MODULES),
        "--loglevel",
        config.log_level,
        "--without-gossip",
        "--without-mingle",
    ]


def node_worker_env(hostname: str) -> dict[str, str]:
    """The variables to add to the worker's environment: which node it emulates, where it logs."""
    return {"OAR_NODE_HOSTNAME": hostname, "OAR_PROCESS_KIND": f"node-{hostname}"}
