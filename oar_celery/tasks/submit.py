"""``oarsub``'s requests: admission and insertion (:mod:`oar_celery.head.submit`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

_SUBMIT = "oar_celery.head.submit"

submit = app.task(name=Task.SUBMIT, base=AuthenticatedTask)(deferred(_SUBMIT, "submit"))
submit_many = app.task(name=Task.SUBMIT_MANY, base=AuthenticatedTask)(deferred(_SUBMIT, "submit_many"))
