"""``oarqueue``, ``oarnotify`` and ``oaraccounting``: the admin's requests (:mod:`oar_celery.head.queue_admin`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

_QUEUE_ADMIN = "oar_celery.head.queue_admin"

queue = app.task(name=Task.QUEUE, base=AuthenticatedTask)(deferred(_QUEUE_ADMIN, "queue_task"))
notify_tag = app.task(name=Task.NOTIFY_TAG, base=AuthenticatedTask)(deferred(_QUEUE_ADMIN, "notify_task"))
accounting = app.task(name=Task.ACCOUNTING, base=AuthenticatedTask)(deferred(_QUEUE_ADMIN, "accounting_task"))
