"""How a job's usage is cut into accounting windows, as OAR's ``update_accounting`` cuts it."""

from __future__ import annotations

from oar_celery.head.lib.accounting import consumptions, windows


def test_a_job_inside_one_window_is_one_row() -> None:
    assert windows(100, 400, 86400) == [(0, 86399, 300)]


def test_a_job_across_a_boundary_is_split_at_it() -> None:
    assert windows(86000, 87000, 86400) == [(0, 86399, 400), (86400, 172799, 600)]


def test_a_job_that_did_not_run_has_no_window() -> None:
    assert windows(500, 500, 86400) == []


def test_used_and_asked_are_times_the_resources() -> None:
    totals = consumptions([("alice", "p", "default", 100, 400, 3600, 2)], 86400)
    assert totals == {(0, 86399, "alice", "p", "default", "USED"): 600,
                      (0, 86399, "alice", "p", "default", "ASKED"): 7200}
