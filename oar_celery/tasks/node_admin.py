"""Requests on resources: ``oarnodesetting``, ``oarremoveresource``, ``oar-celery resources add`` and ``oarproperty``.

See :mod:`oar_celery.head.node_admin` and :mod:`oar_celery.head.properties`.
"""

from __future__ import annotations

from oar_celery.celery_app import app
from oar_celery.deferred import deferred
from oar_celery.protocol.names import Task
from oar_celery.tasks.authenticated import AuthenticatedTask

_NODE_ADMIN = "oar_celery.head.node_admin"
_PROPERTIES = "oar_celery.head.properties"

node_setting = app.task(name=Task.NODE_SETTING, base=AuthenticatedTask)(deferred(_NODE_ADMIN, "node_setting"))
remove_resources = app.task(name=Task.REMOVE_RESOURCES, base=AuthenticatedTask)(
    deferred(_NODE_ADMIN, "remove_resources_task"))
add_resources = app.task(name=Task.ADD_RESOURCES, base=AuthenticatedTask)(deferred(_NODE_ADMIN, "add_hosts_task"))
property_change = app.task(name=Task.PROPERTY, base=AuthenticatedTask)(deferred(_PROPERTIES, "property_task"))
