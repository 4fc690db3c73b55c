"""Pure parts of the REST API and the metrics: token revocation, OAR3's types, the metrics' tail of new rows."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from oar_celery.api.auth import create_token, revoked, token_user
from oar_celery.api.errors import ApiError
from oar_celery.api.reads import job_types
from oar_celery.config import Settings
from oar_celery.head.metrics import SETTLE, Tail, cumulative


def test_a_token_names_its_user_until_its_key_changes() -> None:
    config = Settings(api_secret_key="k" * 32)
    assert token_user(create_token("bob", config), config) == "bob"
    try:
        token_user(create_token("bob", config), Settings(api_secret_key="x" * 32))
    except ApiError as error:
        assert error.status == 401
    else:
        raise AssertionError("a token under another key was accepted")


def test_revocation_dates_refuse_tokens_issued_before_them(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    issued = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    path.write_text(json.dumps({"revoked": {"bob": "2026-01-01 12:00:01"}}))
    assert revoked("bob", issued, str(path)) and not revoked("alice", issued, str(path))
    path.write_text(json.dumps({"global": "2026-01-01 11:00:00"}))
    assert not revoked("bob", issued, str(path))
    path.write_text("not json")  # a broken file revokes everything rather than nothing
    assert revoked("alice", issued, str(path))
    assert not revoked("bob", issued, str(tmp_path / "absent.json"))


def test_job_types_are_oar3s_dict() -> None:
    assert job_types(["besteffort", "timesharing=user,*"]) == {"besteffort": True, "timesharing": "user,*"}


def test_the_tail_counts_each_row_once_and_waits_for_late_commits() -> None:
    tail = Tail(0)
    now = 1000.0
    old, recent = now - SETTLE - 1, now - 1
    assert tail.fresh([(1, old, "a"), (3, recent, "c")], now) == ["a", "c"]
    assert tail.settled == 1
    # row 2 committed late, below a row already seen: still counted, and 3 is not counted again
    assert tail.fresh([(2, old, "b"), (3, recent, "c")], now) == ["b"]
    assert tail.settled == 2
    assert tail.fresh([(3, recent, "c")], now + SETTLE) == []  # the reads ask for keys above ``settled`` only
    assert tail.settled == 3 and tail.seen == set()


def test_cumulative_buckets_end_with_inf() -> None:
    assert cumulative((1.0, 5.0), [2, 0, 1]) == [("1.0", 2), ("5.0", 2), ("+Inf", 3)]
