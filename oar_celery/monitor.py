"""Flower as oar-celery runs it: the same Flower, which also asks the workers for their queues on a timer.

Flower asks every worker for its queues (and stats) once, when it starts, and
again only when someone refreshes its Workers page. Started before the nodes,
as systemd or compose may well start it, its Broker page would list
``oar.head`` alone, and a node restarted since would show stale queues. Every
``OAR_FLOWER_REFRESH`` seconds (60) it asks again, as the refresh button does.

Flower has no hook for this: its command builds ``flower.app.Flower``, so the
Flower process (``OAR_PROCESS_KIND=flower``) has that name stand for a
subclass that starts the timer with Flower's own event loop.
"""

from __future__ import annotations

from typing import Any


def install(refresh_seconds: float) -> None:
    """Make ``celery flower`` in this process build the Flower that refreshes its workers."""
    from flower import command
    from flower.app import Flower
    from tornado.ioloop import PeriodicCallback

    class RefreshingFlower(Flower):
        def start(self) -> Any:
            if refresh_seconds > 0:
                PeriodicCallback(self.update_workers, refresh_seconds * 1000).start()
            return super().start()

    command.Flower = RefreshingFlower
