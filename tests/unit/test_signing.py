"""The signing envelope of node tasks and reports: what it accepts, and each way a forgery is refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from oar_celery.protocol.signing import (
    HEAD,
    REPORT,
    Keyring,
    Refused,
    canonical,
    create_keys,
    read_key,
    sign,
    task_subject,
    verify,
)

KEY = b"k" * 64
OTHER = b"o" * 64
WINDOW = 300.0
SPEC = {"spec": {"job_id": 7, "user": "alice", "command": "sleep 60", "env": {"A": "1"}, "walltime": 60.5}}


def wire(payload: dict) -> dict:  # type: ignore[type-arg]
    """The payload as the receiver gets it: through JSON, as the broker carries it."""
    return json.loads(json.dumps(payload))


def test_a_signed_task_verifies_after_the_json_round_trip() -> None:
    subject = task_subject("oar.node.launch", "node1")
    signature = sign(KEY, HEAD, subject, SPEC)
    received = wire({**SPEC, "oar_sig": signature})
    checked = verify(KEY, received.pop("oar_sig"), subject, received, window=WINDOW)
    assert checked["signer"] == HEAD and checked["nonce"] == signature["nonce"]


def test_a_changed_field_breaks_the_signature() -> None:
    subject = task_subject("oar.node.launch", "node1")
    signature = sign(KEY, HEAD, subject, SPEC)
    as_root = {"spec": {**SPEC["spec"], "user": "root"}}
    with pytest.raises(Refused, match="bad signature"):
        verify(KEY, signature, subject, as_root, window=WINDOW)


def test_another_key_is_refused() -> None:
    subject = task_subject("oar.node.kill", "node1")
    payload = {"job_id": 3, "grace": 1}
    with pytest.raises(Refused, match="bad signature"):
        verify(KEY, sign(OTHER, HEAD, subject, payload), subject, payload, window=WINDOW)


def test_a_signature_for_another_task_or_node_is_refused() -> None:
    payload = {"job_id": 3}
    signature = sign(KEY, HEAD, task_subject("oar.node.suspend", "node1"), payload)
    for subject in (task_subject("oar.node.resume", "node1"), task_subject("oar.node.suspend", "node2")):
        with pytest.raises(Refused, match="bad signature"):
            verify(KEY, signature, subject, payload, window=WINDOW)


def test_a_claimed_signer_is_part_of_the_mac() -> None:
    report = {"kind": "ended", "job_id": 3, "host": "node2", "exit_code": 0, "reason": "exited", "message": ""}
    signature = sign(KEY, "node2", REPORT, report)
    with pytest.raises(Refused, match="bad signature"):
        verify(KEY, {**signature, "signer": "node1"}, REPORT, {**report, "host": "node1"}, window=WINDOW)


def test_an_old_or_future_signature_is_stale() -> None:
    payload = {"job_id": 3}
    subject = task_subject("oar.node.kill", "node1")
    for offset in (-WINDOW - 1, WINDOW + 1):
        signature = sign(KEY, HEAD, subject, payload, now=1_000_000.0 + offset)
        with pytest.raises(Refused, match="stale"):
            verify(KEY, signature, subject, payload, window=WINDOW, now=1_000_000.0)


@pytest.mark.parametrize("signature", [
    None, "abc", {}, {"signer": "head", "issued": "x", "nonce": "0" * 32, "mac": "m"},
    {"signer": "../etc", "issued": 1.0, "nonce": "0" * 32, "mac": "m"},
    {"signer": "head", "issued": 1.0, "nonce": "key*injection", "mac": "m"},
])
def test_a_missing_or_malformed_signature_is_refused(signature: object) -> None:
    with pytest.raises(Refused, match="unsigned|malformed"):
        verify(KEY, signature, "s", {"job_id": 1}, window=WINDOW)


def test_the_canonical_form_ignores_key_order_and_the_signature_fields() -> None:
    assert canonical({"b": 1, "a": [1, 2], "oar_sig": {"x": 1}}) == canonical({"a": [1, 2], "b": 1, "sig": 2})


def test_keys_are_made_private_once_and_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = create_keys(keys, ["node1", "node2"])
    assert sorted(p.name for p in created) == ["head.key", "node1.key", "node2.key"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700 and stat.S_IMODE((keys / "nodes").stat().st_mode) == 0o700
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_key(keys / "nodes" / "node1.key")
    assert create_keys(keys, ["node1", "node3"]) == [keys / "nodes" / "node3.key"]
    assert read_key(keys / "nodes" / "node1.key") == first
    ring = Keyring(keys, enabled=True)
    assert ring.node("node1") == first and ring.node("node9") is None and ring.node("../head") is None
    assert ring.head() is not None and ring.head() != first


def test_a_node_name_that_is_no_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a node name"):
        create_keys(tmp_path / "keys", ["../../etc/passwd"])


def test_a_refusal_is_one_log_line_whatever_the_forger_wrote(caplog: pytest.LogCaptureFixture) -> None:
    from oar_celery.protocol.signing import refuse

    with caplog.at_level("WARNING"):
        refuse(None, "launch", "node1\nrefused nothing", "unsigned", "node1", "sent by x\x1b[2J\ny")
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("refused launch from node1?refused nothing on node1: unsigned")


def test_a_signer_without_a_key_is_counted_as_unknown() -> None:
    from oar_celery.protocol.signing import claimed_signer

    known = {"head", "node1"}.__contains__
    assert claimed_signer(None, known) == "unsigned"
    assert claimed_signer({"signer": "node1"}, known) == "node1"
    assert claimed_signer({"signer": "node1"}) == "node1"
    assert claimed_signer({"signer": "made-up-4242"}, known) == "unknown"
    assert claimed_signer({"signer": "bad name\n"}) == "unknown"
