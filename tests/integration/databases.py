"""A fresh OAR database for the in-process tests: 2 hosts x 2 cores, this process configured to use it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def oar_database(url: str, redis_url: str, state: Path) -> Iterator[str]:
    """Create OAR's tables at ``url`` with node1 and node2, point this process's settings at it, then restore them."""
    from oar_celery.config import settings
    from oar_celery.db.schema import init_database
    from oar_celery.db.session import dispose_engines, session_scope
    from oar_celery.head.lib.resources import add_resources, forget_columns

    saved = {key: value for key, value in os.environ.items() if key.startswith("OAR_")}
    os.environ.update(OAR_DATABASE_URL=url, OAR_BROKER_URL=redis_url, OAR_SECURITY_TIME="0",
                      OAR_STATE_DIR=str(state), OAR_CONFIG_FILE=str(state / "absent.conf"))
    settings.cache_clear()
    forget_columns()
    try:
        init_database(url)
        with session_scope() as session:
            add_resources(session, ["node1", "node2"], cores=2)
        yield url
    finally:
        dispose_engines()
        for key in [k for k in os.environ if k.startswith("OAR_")]:
            del os.environ[key]
        os.environ.update(saved)
        settings.cache_clear()
        forget_columns()
