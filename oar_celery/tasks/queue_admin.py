"""``oarqueue``, ``oarnotify`` and ``oaraccounting``: the admin's requests (:mod:`oar_celery.head.queue_admin`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import queue_admin as head_queue_admin
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

queue = app.task(name=Task.QUEUE, base=AuthenticatedTask)(head_queue_admin.queue_task)
notify_tag = app.task(name=Task.NOTIFY_TAG, base=AuthenticatedTask)(head_queue_admin.notify_task)
accounting = app.task(name=Task.ACCOUNTING, base=AuthenticatedTask)(head_queue_admin.accounting_task)
