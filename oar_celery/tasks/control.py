"""``oardel``, ``oarhold`` and ``oarresume``: the users' requests on their jobs (:mod:`oar_celery.head.control`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

_CONTROL = "oar_celery.head.control"

delete = app.task(name=Task.DELETE, base=AuthenticatedTask)(deferred(_CONTROL, "delete"))
hold = app.task(name=Task.HOLD, base=AuthenticatedTask)(deferred(_CONTROL, "hold"))
resume = app.task(name=Task.RESUME, base=AuthenticatedTask)(deferred(_CONTROL, "resume"))
toggle_besteffort = app.task(name=Task.BESTEFFORT, base=AuthenticatedTask)(deferred(_CONTROL, "toggle_besteffort"))
force_terminate = app.task(name=Task.FORCE_TERMINATE, base=AuthenticatedTask)(deferred(_CONTROL, "force_terminate"))
job_key = app.task(name=Task.JOB_KEY, base=AuthenticatedTask)(deferred(_CONTROL, "job_key"))
