"""The migrations build exactly the schema the models describe, indexes included."""

from __future__ import annotations

import pytest

from tests.integration.test_scheduling_db import database  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def test_the_migrated_schema_matches_the_models(database: str) -> None:  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from oar_celery.db.models import Base
    from oar_celery.db.session import get_engine

    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
