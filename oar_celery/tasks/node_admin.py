"""``oarnodesetting`` and ``oarremoveresource``: requests on resources (:mod:`oar_celery.head.node_admin`)."""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import node_admin as head_node_admin
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

node_setting = app.task(name=Task.NODE_SETTING, base=AuthenticatedTask)(head_node_admin.node_setting)
remove_resources = app.task(name=Task.REMOVE_RESOURCES, base=AuthenticatedTask)(head_node_admin.remove_resources_task)
