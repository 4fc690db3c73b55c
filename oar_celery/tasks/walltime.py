"""``oarwalltime``: walltime change requests and their status (:mod:`oar_celery.head.walltime`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import walltime as head_walltime
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

walltime = app.task(name=Task.WALLTIME, base=AuthenticatedTask)(head_walltime.walltime_task)
