"""The Gantt's earliest-start search skips windows; it must still find what a naive scan finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oar_celery.scheduler.gantt import INFINITY, Gantt
from oar_celery.scheduler.placement import take_first

WIDTH = 8
ALL = (1 << WIDTH) - 1


def naive(gantt: Gantt, not_before: int, duration: int, need: int) -> tuple[int, int] | None:
    """Try every candidate start in order, with no skipping at all."""
    candidates = sorted({not_before, *(s for s in gantt.starts if s > not_before)})
    for start in candidates:
        avail = gantt.window(start, start + duration)
        if avail.bit_count() >= need:
            return start, take_first(avail, need)
    return None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 30), st.integers(1, ALL), st.booleans()),
        max_size=12,
    ),
    st.integers(0, 40),
    st.integers(1, 40),
    st.integers(1, WIDTH),
)
def test_earliest_matches_a_naive_scan(occupations, not_before, duration, need) -> None:  # type: ignore[no-untyped-def]
    gantt = Gantt(0, ALL)
    for start, length, mask, forever in occupations:
        gantt.occupy(start, INFINITY if forever else start + length, mask)

    def fit(avail: int) -> int:
        return take_first(avail, need) if avail.bit_count() >= need else 0

    found = gantt.earliest(not_before, duration, fit, universe=ALL, min_count=need)
    assert found == naive(gantt, not_before, duration, need)
