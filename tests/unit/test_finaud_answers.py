"""Finaud's batch of ping answers: only an answer its own node signed, recently, counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from oar_celery.head.finaud import checked_answers
from oar_celery.protocol.names import Task
from oar_celery.protocol.signing import HEAD, TASK_FIELD, Keyring, create_keys, read_key, sign, task_subject

NOW = 1_000_000.0
WINDOW = 300.0
SUBJECT = task_subject(Task.FINAUD_ANSWER, HEAD)


@pytest.fixture
def keys(tmp_path: Path) -> Keyring:
    create_keys(tmp_path, ["node1", "node2"])
    return Keyring(tmp_path, enabled=True)


def node_key(keys: Keyring, host: str) -> bytes:
    key = read_key(keys.dir / "nodes" / f"{host}.key")
    assert key is not None
    return key


def answer(host: str, token: str = "t1", jobs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"host": host, "token": token, "jobs": jobs or {}}


def signed(kwargs: dict[str, Any], key: bytes, signer: str, at: float = NOW) -> bytes:
    return json.dumps({**kwargs, TASK_FIELD: sign(key, signer, SUBJECT, kwargs, now=at)}).encode()


def test_an_answer_its_node_signed_is_taken_with_its_nonce(keys: Keyring) -> None:
    checked, refused = checked_answers([signed(answer("node1"), node_key(keys, "node1"), "node1")], keys, WINDOW, NOW)
    assert refused == []
    [(taken, claim)] = checked
    assert taken == {"host": "node1", "token": "t1", "jobs": {}}
    assert claim["host"] == "node1" and len(claim["nonce"]) == 32


def test_an_unsigned_answer_is_refused(keys: Keyring) -> None:
    checked, refused = checked_answers([json.dumps(answer("node1")).encode()], keys, WINDOW, NOW)
    assert checked == []
    assert refused == [("unsigned", "node1", "unsigned")]


def test_an_answer_signed_by_another_node_in_its_name_is_refused(keys: Keyring) -> None:
    forged = answer("node1", jobs={"7": {"exit_code": 0, "reason": "exited", "message": ""}})
    own_key = signed(forged, node_key(keys, "node2"), "node2")
    claimed = signed(forged, node_key(keys, "node2"), "node1")
    checked, refused = checked_answers([own_key, claimed], keys, WINDOW, NOW)
    assert checked == []
    assert [why for _, _, why in refused] == ["bad signature", "bad signature"]


def test_a_stale_answer_is_refused(keys: Keyring) -> None:
    old = signed(answer("node1"), node_key(keys, "node1"), "node1", at=NOW - 2 * WINDOW)
    checked, refused = checked_answers([old], keys, WINDOW, NOW)
    assert checked == []
    assert refused[0][2].startswith("stale")


def test_an_answer_for_a_node_without_a_key_is_refused(keys: Keyring) -> None:
    checked, refused = checked_answers([signed(answer("node9"), node_key(keys, "node1"), "node9")], keys, WINDOW, NOW)
    assert checked == []
    assert refused[0][1:] == ("node9", "no key for node 'node9'")


def test_a_malformed_answer_is_refused_and_the_rest_taken(keys: Keyring) -> None:
    good = signed(answer("node2", token="t2"), node_key(keys, "node2"), "node2")
    checked, refused = checked_answers([b"not json", b'{"token": "x"}', good], keys, WINDOW, NOW)
    assert [a["token"] for a, _ in checked] == ["t2"]
    assert [why for _, _, why in refused] == ["malformed answer", "malformed answer"]


def test_without_signing_every_answer_is_taken(tmp_path: Path) -> None:
    checked, refused = checked_answers([json.dumps(answer("node1")).encode()], Keyring(tmp_path, enabled=False),
                                       WINDOW, NOW)
    assert [a["host"] for a, _ in checked] == ["node1"] and refused == []


def test_status_counts_an_answer_waiting_for_finauds_round_and_keeps_the_newest(keys: Keyring) -> None:
    from oar_celery.cli.health import waiting_answers

    now = time.time()
    old = signed(answer("node1", token="t1"), node_key(keys, "node1"), "node1", at=now)
    new = signed(answer("node1", token="t2"), node_key(keys, "node1"), "node1", at=now)
    forged = signed(answer("node2", token="t9"), node_key(keys, "node1"), "node1", at=now)
    assert waiting_answers([new, forged, old], keys, WINDOW) == {"node1": "t2"}
