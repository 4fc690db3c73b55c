"""Judas's notifications, each a task of its own: SMTP never delays a report (:mod:`oar_celery.head.lib.judas`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task

_JUDAS = "oar_celery.head.lib.judas"

mail_admin = app.task(name=Task.JUDAS_MAIL_ADMIN, ignore_result=True)(deferred(_JUDAS, "mail_admin_task"))
notify = app.task(name=Task.JUDAS_NOTIFY, ignore_result=True)(deferred(_JUDAS, "notify_task"))
