"""OAR's meta-scheduler as a pure function: a Gantt chart with conservative backfilling.

The round itself, and how it goes, is :mod:`.rounds`; the parsers (:mod:`.request`,
:mod:`.filters`, :mod:`.walltime`) and the policies (:mod:`.karma`, :mod:`.quotas`,
:mod:`.containers`...) are modules of their own. Nothing here imports Celery or a
database. This package imports none of its modules until a name is asked for, so that
a node reading :mod:`.walltime` never loads the algorithm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy sees them; at run time each is loaded on first use
    from .errors import RequestError
    from .filters import PropertyFilter, compile_filter
    from .placement import check_satisfiable
    from .request import parse_moldables, parse_resource_request
    from .rounds import Frontier, is_besteffort, schedule, timeshare_key
    from .types import Allocation, Job, Level, Moldable, Resource, ResourceGroup, SchedulingResult
    from .walltime import parse_walltime

#: The package's public names, and the module each comes from (loaded on first use, PEP 562).
_HOMES = {
    "Allocation": "types", "Job": "types", "Level": "types", "Moldable": "types", "Resource": "types",
    "ResourceGroup": "types", "SchedulingResult": "types", "PropertyFilter": "filters", "compile_filter": "filters",
    "RequestError": "errors", "check_satisfiable": "placement", "parse_moldables": "request",
    "parse_resource_request": "request", "parse_walltime": "walltime", "schedule": "rounds",
    "is_besteffort": "rounds", "timeshare_key": "rounds", "Frontier": "rounds",
}
__all__ = [
    "Allocation",
    "Frontier",
    "Job",
    "Level",
    "Moldable",
    "PropertyFilter",
    "RequestError",
    "Resource",
    "ResourceGroup",
    "SchedulingResult",
    "check_satisfiable",
    "compile_filter",
    "is_besteffort",
    "parse_moldables",
    "parse_resource_request",
    "parse_walltime",
    "schedule",
    "timeshare_key",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
