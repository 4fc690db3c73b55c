"""Requests on resources: ``oarnodesetting``, ``oarremoveresource``, ``oar-celery resources add`` and ``oarproperty``.

See :mod:`oar_celery.head.node_admin` and :mod:`oar_celery.head.properties`.
"""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.head import node_admin as head_node_admin
from oar_celery.head import properties as head_properties
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

node_setting = app.task(name=Task.NODE_SETTING, base=AuthenticatedTask)(head_node_admin.node_setting)
remove_resources = app.task(name=Task.REMOVE_RESOURCES, base=AuthenticatedTask)(head_node_admin.remove_resources_task)
add_resources = app.task(name=Task.ADD_RESOURCES, base=AuthenticatedTask)(head_node_admin.add_hosts_task)
property_change = app.task(name=Task.PROPERTY, base=AuthenticatedTask)(head_properties.property_task)
