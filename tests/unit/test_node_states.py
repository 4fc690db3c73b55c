"""Pure rules of node states: what the scheduler sees, and desktop-computing expiry."""

from __future__ import annotations

from oar_celery.head.lib.resources import admission_state, scheduling_state
from oar_celery.head.node_change_state import NO_LIMIT, _allowed

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


def test_admin_is_told_of_failed_nodes_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from oar_celery.head.lib import judas
    from oar_celery.head.lib.failures import Failures
    from oar_celery.head.node_change_state import Change, tell_admin

    mails: list[tuple[str, str]] = []
    monkeypatch.setattr(judas, "mail_admin", lambda subject, body: mails.append((subject, body)))
    tell_admin([Change(1, "node1", "Alive", "Absent")], Failures())
    assert mails == []
    tell_admin([Change(2, "node2", "Alive", "Suspected")], Failures(kills={7: ["node2"]}))
    (subject, body), = mails
    assert "node2" in subject and "jobs set Error: 7" in body
