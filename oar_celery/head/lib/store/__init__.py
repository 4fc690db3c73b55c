"""The store: the state changes every cycle makes many times, behind one interface.

Moving jobs from state to state (with their state log and the release of
their resources), applying a batch of node reports and starting jobs now
are the head's hot writes. Each has two implementations with one contract:

- :class:`~.generic.GenericStore`, SQLAlchemy statements any database runs
  (SQLite for a one-machine cluster);
- :class:`~.postgres.PostgresStore`, the same in one statement each, with
  data-modifying CTEs (:mod:`.sql`), which is what keeps a cycle short.

Both pass the contract suite ``tests/integration/test_store.py`` on
PostgreSQL and SQLite. Callers ask :func:`store_for` for the session's
store and never look at the dialect themselves.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from oar_celery.head.lib.store.base import Moved, ReportChange, ReportsApplied, Store
from oar_celery.head.lib.store.generic import GenericStore
from oar_celery.head.lib.store.postgres import PostgresStore

__all__ = ["GenericStore", "Moved", "PostgresStore", "ReportChange", "ReportsApplied", "Store", "store_for"]

_GENERIC = GenericStore()
_POSTGRES = PostgresStore()


def store_for(session: Session) -> Store:
    """The store of the session's database."""
    return _POSTGRES if session.get_bind().dialect.name == "postgresql" else _GENERIC
