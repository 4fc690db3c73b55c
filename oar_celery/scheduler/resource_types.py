"""Which resource types a job may get, as OAR decides it.

OAR 2.5's oarsub and OAR3's scheduler (``get_data_jobs``): a request whose
job properties and group property say nothing of ``type`` only gets
resources of ``type = 'default'``; other types (licences, tokens, ...) are
given only to a request that names them (``-p "type='token'"``, or
``-l "{type='token'}/resource_id=1"``). A resource without a ``type``
property counts as ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping

from oar_celery.scheduler.filters import compile_filter

DEFAULT_TYPE = "default"


def mentions_type(*filters: str | None) -> bool:
    """Whether any filter reads the ``type`` column (parsed, not searched as text)."""
    return any(filter_text and "type" in compile_filter(filter_text, None).columns for filter_text in filters)


def is_default(properties: Mapping[str, object]) -> bool:
    """Whether a resource is of the default type."""
    value = properties.get("type")
    return value is None or value == DEFAULT_TYPE
