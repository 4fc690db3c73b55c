"""One Celery worker process serving many emulated nodes, for the wide-cluster benchmark.

A real node worker serves the one node named by ``OAR_NODE_HOSTNAME``. Two
hundred such processes would not fit on a laptop, so this worker consumes the
queues of every node given on its command line and, before each task, takes
the node's name from the queue the message came through (its routing key).
Each node keeps its own queue and its own job directories; only the process is
shared. The node code is used unchanged: its ``node_hostname`` is looked up
per task.

``python -m bench.wide_worker node1 node2 ...``
"""

from __future__ import annotations

import os
import sys
import threading
import uuid

_current = threading.local()
CONCURRENCY = 16


def current_host() -> str:
    """The node of the task this thread runs."""
    return getattr(_current, "host", None) or os.environ.get("OAR_NODE_HOSTNAME") or "unknown"


def _remember_host(task: object = None, **_: object) -> None:
    info = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    _current.host = str(info.get("routing_key") or "").removeprefix("oar.node.") or None


def argv(hosts: list[str]) -> list[str]:
    from oar_celery.celery_app import NODE_TASK_MODULES, node_queue

    return [
        "worker", "-Q", ",".join(node_queue(host) for host in hosts), "-n", f"wide@{uuid.uuid4().hex[:8]}",
        "--pool", "threads", "--concurrency", str(CONCURRENCY), "--prefetch-multiplier", "1", "-O", "fair",
        "-I", ",".join(NODE_TASK_MODULES), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
    ]


def main(hosts: list[str]) -> None:
    from celery.signals import task_prerun

    import oar_celery.tasks.bipbip as bipbip
    import oar_celery.tasks.signed as signed
    from oar_celery.celery_app import app

    bipbip.node_hostname = current_host  # type: ignore[assignment]
    signed.node_hostname = current_host  # type: ignore[assignment]  # each task checked with its node's key
    task_prerun.connect(_remember_host, weak=False)
    app.worker_main(argv(hosts))


if __name__ == "__main__":
    main(sys.argv[1:])
