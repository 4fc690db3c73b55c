"""The quotas file on the head: read when the scheduler starts a round, read again whenever it changes.

``OAR_QUOTAS`` turns quotas on and ``OAR_QUOTAS_CONF_FILE`` names OAR3's
JSON file. A round looks at the file's modification time and size (one
``stat``) and parses it only when they changed, so an admin's edit applies
from the next round on, without a restart. A file that cannot be read or
parsed is logged once per version and the last good rules stay in force
(none if there never were any): a typo never lifts or freezes the cluster's
quotas silently.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from oar_celery.config import Settings
from oar_celery.scheduler import types as sched
from oar_celery.scheduler.quotas import Quotas, QuotasError

logger = logging.getLogger(__name__)


@dataclass
class _Loaded:
    version: tuple[str, int, int, int] | None = None
    quotas: Quotas | None = None


_loaded = _Loaded()


def quotas_for(config: Settings, resources: list[sched.Resource]) -> Quotas | None:
    """The quotas in force for this round, or None when they are off (or were never readable)."""
    if not config.quotas:
        return None
    path = config.quotas_conf_file
    # OAR3's QUOTAS_ALL_NB_RESOURCES_MODE default_not_dead: ALL is the resources not Dead
    all_value = sum(1 for resource in resources if resource.state != "Dead")
    try:
        stat = os.stat(path)
    except OSError as error:
        return _keep(("missing", 0, 0, all_value), f"quotas file {path} cannot be read: {error.strerror}")
    version = (path, stat.st_mtime_ns, stat.st_size, all_value)
    if version == _loaded.version:
        return _loaded.quotas
    try:
        with open(path, encoding="utf-8") as source:
            quotas = Quotas.from_json(json.load(source), all_value)
    except (OSError, ValueError) as error:  # QuotasError and JSON errors are ValueErrors
        kind = "" if isinstance(error, QuotasError) else "not JSON: "
        return _keep(version, f"quotas file {path} {'is ' + kind if kind else 'is wrong: '}{error}")
    _loaded.version, _loaded.quotas = version, quotas
    logger.info("quotas read from %s", path)
    return quotas


def _keep(version: tuple[str, int, int, int], problem: str) -> Quotas | None:
    if version != _loaded.version:
        logger.error("%s; %s", problem, "the last rules read stay in force" if _loaded.quotas else "no quotas apply")
        _loaded.version = version
    return _loaded.quotas
