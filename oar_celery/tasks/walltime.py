"""``oarwalltime``: walltime change requests and their status (:mod:`oar_celery.head.walltime`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

_WALLTIME = "oar_celery.head.walltime"

walltime = app.task(name=Task.WALLTIME, base=AuthenticatedTask)(deferred(_WALLTIME, "walltime_task"))
