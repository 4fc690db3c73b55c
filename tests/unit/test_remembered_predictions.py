"""The predictions a head process remembers writing, after a quick round started some of their jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oar_celery.head.lib import gantt_writes


@pytest.fixture(autouse=True)
def remembered() -> Iterator[None]:
    rows = {m: (float(1000 + 60 * m), tuple(range(m, m + m % 4 + 1))) for m in range(1, 200)}
    gantt_writes._last = gantt_writes._Written(rows, gantt_writes._fingerprint_of(rows))
    yield
    gantt_writes._last = None


def test_forgetting_moldables_leaves_the_fingerprint_of_the_rows_left() -> None:
    gantt_writes.forget_remembered({3, 50, 51, 199, 5000})  # 5000 was never remembered
    last = gantt_writes._last
    assert last is not None
    assert set(last.rows) == set(range(1, 200)) - {3, 50, 51, 199}
    assert last.fingerprint == gantt_writes._fingerprint_of(last.rows)


def test_forgetting_nothing_changes_nothing() -> None:
    last = gantt_writes._last
    assert last is not None
    before = (dict(last.rows), last.fingerprint)
    gantt_writes.forget_remembered(set())
    assert (last.rows, last.fingerprint) == before
