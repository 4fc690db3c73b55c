"""Accounts kept a few seconds for the jobs of a node, looked up again when they may have changed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oar_celery import accounts
from oar_celery.accounts import Account, cached_account


@dataclass
class Lookups:
    """The real look-ups made, by user, and the clock the cache reads."""

    made: list[str] = field(default_factory=list)
    clock: list[float] = field(default_factory=lambda: [100.0])


@pytest.fixture
def lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lookups:
    """Account files of the test's own, a clock it moves, and the look-ups made."""
    seen = Lookups()
    files = (tmp_path / "passwd", tmp_path / "group")
    for path in files:
        path.write_text("x\n")
    monkeypatch.setattr(accounts, "ACCOUNT_FILES", tuple(str(p) for p in files))
    monkeypatch.setattr(accounts, "_accounts", {})
    monkeypatch.setattr(accounts.time, "monotonic", lambda: seen.clock[0])
    uids = iter(range(1000, 2000))

    def lookup(user: str) -> Account | None:
        seen.made.append(user)
        if user == "ghost":
            return None
        return Account(user, next(uids), 100, (100,), "/home", "/bin/sh")

    monkeypatch.setattr(accounts, "lookup_account", lookup)
    return seen


def test_an_account_is_looked_up_once_within_the_ttl(lookups: Lookups) -> None:
    first = cached_account("alice")
    assert cached_account("alice") is first
    assert lookups.made == ["alice"]


def test_it_is_looked_up_again_after_the_ttl(lookups: Lookups) -> None:
    first = cached_account("alice")
    lookups.clock[0] += accounts.ACCOUNT_TTL
    second = cached_account("alice")
    assert lookups.made == ["alice", "alice"] and second is not None and first is not None
    assert second.uid != first.uid


def test_an_edited_or_replaced_account_file_is_seen_at_once(lookups: Lookups) -> None:
    cached_account("alice")
    passwd, group = (Path(p) for p in accounts.ACCOUNT_FILES)
    passwd.write_text("x\nalice\n")
    cached_account("alice")
    replacement = group.with_name("group.new")
    replacement.write_text("x\n")
    os.replace(replacement, group)
    cached_account("alice")
    assert lookups.made == ["alice"] * 3


def test_an_unknown_user_is_never_kept(lookups: Lookups) -> None:
    assert cached_account("ghost") is None
    assert cached_account("ghost") is None
    assert lookups.made == ["ghost", "ghost"]


def test_the_real_lookup_still_answers() -> None:
    assert cached_account("no-such-oar-user") is None
    root = cached_account("root")
    assert root is not None and root.uid == 0
