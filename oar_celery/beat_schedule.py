"""What beat fires, and how often: each entry is a message to Almighty.

Beat only sends messages; the work happens in Almighty's cycles under the
cluster-wide lock. So a second beat started by mistake, or a slow cycle
overtaken by the next tick, never runs a module twice at once: the extra
messages collapse into the next cycle.
"""

from __future__ import annotations

from typing import Any

from oar_celery.config import Settings
from oar_celery.protocol.names import Task


def _entry(message: str, every: float) -> dict[str, Any]:
    return {
        "task": Task.NOTIFY,
        "schedule": max(every, 0.1),
        "args": ([message],),
        "options": {"queue": "oar.head", "expires": max(every * 2, 5.0)},
    }


def build_schedule(config: Settings) -> dict[str, dict[str, Any]]:
    return {
        "almighty-scheduling-tick": _entry("Scheduling", config.almighty_tick),
        "sarko": _entry("Villains", config.sarko_period),
        "finaud": _entry("Finaud", config.finaud_period),
        "node-change-state": _entry("ChState", config.node_change_state_period),
    }
