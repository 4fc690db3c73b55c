"""The compute-node side of OAR (bipbip): runs jobs, has no database access.

A node worker consumes ``oar.node.<host>``. Its tasks return at once; its jobs
are watched by one watcher thread of the worker process, and every outcome is
reported to the head: job reports in batches queued for Almighty
(``node/reports.py``), other messages as tasks on ``oar.head``. Several emulated
nodes may run on one machine, so the node's name comes from ``OAR_NODE_HOSTNAME``.
"""

from __future__ import annotations

import os
import socket


def node_hostname() -> str:
    """The name of the node this process serves, as the head knows it."""
    return os.environ.get("OAR_NODE_HOSTNAME") or socket.gethostname()
