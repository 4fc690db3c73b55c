"""Almighty's Celery tasks, and the table of the modules a cycle may run.

The coordinator itself is :mod:`oar_celery.head.almighty`; it is given the
table below and imports none of the modules it runs. This module is the one
place where the two meet, as OAR's Almighty names the modules it calls.

The head worker's main process imports this module to know the tasks by
name; only its pool processes run them, so the coordinator and the modules
are imported where a cycle runs (:mod:`oar_celery.deferred`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from celery import signals

from oar_celery.celery_app import app
from oar_celery.config import settings
from oar_celery.deferred import preload
from oar_celery.protocol.bus import notify
from oar_celery.protocol.names import Task

if TYPE_CHECKING:
    from oar_celery.head import almighty

_HEAD_MODULES = ("almighty", "finaud", "leon", "node_change_state", "quick_round", "reports", "runner", "sarko",
                 "scheduling", "lib.context")
preload(*(f"oar_celery.head.{name}" for name in _HEAD_MODULES))


def modules() -> almighty.Modules:
    """What each module name of :data:`oar_celery.head.almighty.ORDER` runs."""
    from oar_celery.head import finaud, leon, node_change_state, quick_round, reports, runner, sarko, scheduling

    return {
        "reports": reports.apply_queued,
        "node_change_state": node_change_state.run_node_change_state,
        "finaud": finaud.run_finaud,
        "sarko": sarko.run_sarko,
        "leon": leon.run_leon,
        "scheduler": scheduling.run_scheduler,
        "quick_scheduler": quick_round.run_quick_round,
        "runner": runner.run_runner,
    }


@app.task(name=Task.NOTIFY, ignore_result=True)
def notify_task(messages: list[str]) -> None:
    """Beat's and the nodes' way to send Almighty a message."""
    notify(messages)


@lru_cache(maxsize=1)
def coordinator() -> almighty.Almighty:
    """This head process's Almighty, with its context and the module table."""
    from oar_celery.head import almighty
    from oar_celery.head.lib.context import process_context

    return almighty.Almighty(process_context(), modules())


@app.task(name=Task.CYCLE, ignore_result=True)
def cycle() -> dict[str, dict[str, str]]:
    """Almighty's task: coordinator cycles, as long as messages keep coming.

    Its result names the jobs whose end the cycles applied, with their final
    state: no result is stored, but Flower shows it with the task (search
    ``result:Error``), so a failed OAR job is seen where admins look.
    """
    this = coordinator()
    this.cycles()
    return job_outcomes(this.results)


def job_outcomes(results: list[tuple[str, object]]) -> dict[str, dict[str, str]]:
    """``{"ended": {job id: "Terminated on node1: ..."}}`` from what the cycles' modules returned."""
    from oar_celery.head import reports

    ended: dict[str, str] = {}
    for _, result in results:
        if isinstance(result, reports.Applied):
            ended.update(result.outcomes())
    return {"ended": ended} if ended else {}


@signals.worker_ready.connect
def _start_metrics(**_: object) -> None:
    """The head worker serves its Prometheus endpoint when ``OAR_METRICS_PORT`` > 0."""
    config = settings()
    if config.metrics_port > 0 and os.environ.get("OAR_PROCESS_KIND", "head") == "head":
        from oar_celery.head.metrics import serve

        serve(config)
