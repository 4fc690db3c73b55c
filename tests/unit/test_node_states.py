"""Pure rules of node states: what the scheduler sees, and desktop-computing expiry."""

from __future__ import annotations

from oar_celery.resources import admission_state, scheduling_state
from oar_celery.tasks.node_change_state import NO_LIMIT, _allowed

NOW = 1_000_000.0


def _row(state: str = "Alive", next_state: str = "UnChanged", drain: str = "NO") -> dict[str, str]:
    return {"state": state, "next_state": next_state, "drain": drain}


def test_pending_withdrawal_hides_the_resource_at_once() -> None:
    assert scheduling_state(_row()) == "Alive"
    assert scheduling_state(_row(next_state="Absent")) == "Absent"
    assert scheduling_state(_row(next_state="Dead")) == "Dead"
    assert scheduling_state(_row(next_state="Alive", state="Absent")) == "Absent"


def test_drain_hides_an_alive_resource_but_admission_still_counts_it() -> None:
    assert scheduling_state(_row(drain="YES")) == "Draining"
    assert scheduling_state(_row(state="Suspected", drain="YES")) == "Suspected"
    assert admission_state("Draining") == "Absent"


def test_alive_is_refused_once_the_resource_is_no_longer_lent() -> None:
    assert _allowed("Alive", NO_LIMIT, NOW) == "Alive"
    assert _allowed("Alive", 0, NOW) == "Alive"
    assert _allowed("Alive", NOW + 60, NOW) == "Alive"
    assert _allowed("Alive", NOW - 60, NOW) == "Absent"
    assert _allowed("Dead", NOW - 60, NOW) == "Dead"
