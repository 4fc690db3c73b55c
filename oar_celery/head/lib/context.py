"""What a head module runs with: the settings, the broker's Redis client and the clock.

Almighty hands one to every module it runs. A test builds its own (other
settings, a Redis database of its own, a clock it moves) instead of
patching private names and clearing caches; a worker process builds one
from its environment (:func:`process_context`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from oar_celery.config import Settings, settings
from oar_celery.protocol.bus import broker_redis


@dataclass(frozen=True)
class Context:
    """One process's settings, broker and clock (seconds since the epoch, and a monotonic one)."""

    settings: Settings
    redis: redis.Redis
    clock: Callable[[], float] = field(default=time.time)
    monotonic: Callable[[], float] = field(default=time.monotonic)

    def now(self) -> float:
        return self.clock()


def process_context() -> Context:
    """The context of this process, from its settings."""
    return Context(settings(), broker_redis())
