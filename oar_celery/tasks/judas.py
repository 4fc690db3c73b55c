"""Judas's notifications, each a task of its own: SMTP never delays a report (:mod:`oar_celery.head.lib.judas`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head.lib import judas as head_judas
from oar_celery.protocol.names import Task

mail_admin = app.task(name=Task.JUDAS_MAIL_ADMIN, ignore_result=True)(head_judas.mail_admin_task)
notify = app.task(name=Task.JUDAS_NOTIFY, ignore_result=True)(head_judas.notify_task)
