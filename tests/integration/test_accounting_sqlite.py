"""The accounting upsert and flag on SQLite, the embedded database of a one-machine cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.databases import oar_database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sqlite_db(redis_url: str, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'oar.db'}"
    with oar_database(url, redis_url, tmp_path):
        yield url


def test_accounting_on_sqlite_equals_the_sum_over_finished_jobs(sqlite_db: str) -> None:
    from tests.integration.test_accounting import expected_used, some_jobs, totals

    some_jobs()
    assert totals("USED") == expected_used() == {"alice": 300 + 2000 + 1, "bob": 10 * 2 + 1000}
