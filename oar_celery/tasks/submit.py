"""``oarsub``'s requests: admission and insertion (:mod:`oar_celery.head.submit`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import submit as head_submit
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

submit = app.task(name=Task.SUBMIT, base=AuthenticatedTask)(head_submit.submit)
submit_many = app.task(name=Task.SUBMIT_MANY, base=AuthenticatedTask)(head_submit.submit_many)
