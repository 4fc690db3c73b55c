"""``oardel``, ``oarhold`` and ``oarresume``: the users' requests on their jobs (:mod:`oar_celery.head.control`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import control as head_control
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

delete = app.task(name=Task.DELETE, base=AuthenticatedTask)(head_control.delete)
hold = app.task(name=Task.HOLD, base=AuthenticatedTask)(head_control.hold)
resume = app.task(name=Task.RESUME, base=AuthenticatedTask)(head_control.resume)
toggle_besteffort = app.task(name=Task.BESTEFFORT, base=AuthenticatedTask)(head_control.toggle_besteffort)
force_terminate = app.task(name=Task.FORCE_TERMINATE, base=AuthenticatedTask)(head_control.force_terminate)
job_key = app.task(name=Task.JOB_KEY, base=AuthenticatedTask)(head_control.job_key)
