"""What nodes report about their jobs (:mod:`oar_celery.head.reports`, :mod:`oar_celery.head.lib.suspension`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.signed import FromNodeTask

_SUSPENSION = "oar_celery.head.lib.suspension"
_REPORTS = "oar_celery.head.reports"

#: Each report of a batch carries its node's signature, checked when a cycle applies it.
reports_batch = app.task(name=Task.REPORTS, acks_late=True, ignore_result=True)(deferred(_REPORTS, "reports_task"))
_FROM_NODE = {"base": FromNodeTask, "acks_late": True, "ignore_result": True}
job_running = app.task(name=Task.JOB_RUNNING, **_FROM_NODE)(deferred(_REPORTS, "job_running"))
job_ended = app.task(name=Task.JOB_ENDED, **_FROM_NODE)(deferred(_REPORTS, "job_ended"))
job_resumed = app.task(name=Task.JOB_RESUMED, **_FROM_NODE)(deferred(_SUSPENSION, "job_resumed"))
