"""Finaud's answers: a node's reply to its ping (:mod:`oar_celery.head.finaud`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.signed import FromNodeTask

_FINAUD = "oar_celery.head.finaud"

answer = app.task(name=Task.FINAUD_ANSWER, base=FromNodeTask, ignore_result=True)(deferred(_FINAUD, "answer"))
