"""Signed node messages: an HMAC envelope under one key per node.

Anyone who can write to the broker could otherwise push ``oar.node.launch``
with ``"user": "root"`` onto a node's queue, or queue an ``ended`` report for
someone's job. So every message that makes a node act is signed by the head,
and every report a node sends is signed by that node, with the node's own
key (``<keys_dir>/nodes/<host>.key``): the head holds every node's key, a
node only its own, so a node can speak for itself alone.

A signature (:class:`Signature`) travels in a task's kwargs as ``oar_sig`` and
in each report as ``sig``. Its MAC covers the message's subject (the task
and the node it is for), the signer, the time it was issued, a random nonce
and the message's canonical JSON. The receiver checks, before doing anything:
the MAC (who signed), the signer (the head for a node task; for a report,
the node it is about), the time (within ``OAR_SIGNATURE_WINDOW`` seconds) and
the nonce (never seen: ``SET NX`` on :func:`.names.seen_key`, kept twice the
window, so a replayed message is refused). A refused message is logged with
its origin on one line and counted in ``oar:refused``, never executed.

HMAC-SHA256 rather than Celery's ``auth`` serializer (X.509 signatures): it
costs a sign and a check about a tenth of theirs (``python -m bench signing``,
docs/security.md), and the head needs no CA to add a node.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypedDict

import orjson

from oar_celery.config import Settings, settings
from oar_celery.protocol.names import Key, seen_key

logger = logging.getLogger(__name__)

#: The kwarg of a task that carries its signature, and the field of a report.
TASK_FIELD = "oar_sig"
REPORT_FIELD = "sig"
#: The signer of every node task.
HEAD = "head"
#: The subject of a job report (``running``, ``ended``): the report itself names its job and host.
REPORT = "report"
_NONCE = re.compile(r"^[0-9a-f]{32}$")
#: What a host's or signer's name may be (it names a file and a Redis key).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class Signature(TypedDict):
    """Who signed a message, when, with which nonce, and the MAC over all of it and the message."""

    signer: str
    issued: float
    nonce: str
    mac: str


class Refused(Exception):
    """A message the receiver will not act on; the text says why, in a few words."""


class Counter(Protocol):
    """A redis-py client or pipeline: what counting a refusal and claiming a nonce need."""

    def set(self, name: str, value: bytes, *, nx: bool = ..., ex: int | None = ...) -> Any: ...

    def hincrby(self, name: str, key: str, amount: int = ...) -> Any: ...


def valid_name(name: object) -> bool:
    """Whether ``name`` can be a host or signer: it names a key file and a Redis key."""
    return isinstance(name, str) and bool(_NAME.match(name))


def task_subject(task: str, to: str) -> str:
    """What a task's signature is about: the task, and who it is for (a node's name or the head)."""
    return f"{task}|{to}"


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The message as its MAC sees it: compact JSON, keys sorted, the signature fields left out.

    Both ends compute it from the same JSON, so it is the same bytes after
    the broker's round trip (JSON keys are text, a float comes back the same
    float). orjson, not the standard library: a launch of 20 jobs costs a
    tenth of the time to encode, and encoding is most of a signature's cost.
    """
    plain = {k: v for k, v in payload.items() if k not in (TASK_FIELD, REPORT_FIELD)}
    return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _mac(key: bytes, subject: str, signer: str, issued: float, nonce: str, body: bytes) -> str:
    """HMAC-SHA256 in one call (``hmac.digest``: OpenSSL's one-shot, not a Python HMAC object per message)."""
    head = f"{subject}\n{signer}\n{issued!r}\n{nonce}\n".encode()
    return hmac.digest(key, head + body, "sha256").hex()


def sign(key: bytes, signer: str, subject: str, payload: Mapping[str, Any], *, now: float | None = None) -> Signature:
    """The signature of ``payload`` about ``subject``, by ``signer``, under ``key``."""
    issued = time.time() if now is None else now
    nonce = secrets.token_hex(16)
    return Signature(signer=signer, issued=issued, nonce=nonce,
                     mac=_mac(key, subject, signer, issued, nonce, canonical(payload)))


def verify(key: bytes, signature: object, subject: str, payload: Mapping[str, Any], *, window: float,
           now: float | None = None) -> Signature:
    """The signature, checked: Refused if it is missing, malformed, forged, for another subject, or stale."""
    if not isinstance(signature, dict):
        raise Refused("unsigned")
    try:
        signer, issued, nonce, mac = (signature[k] for k in ("signer", "issued", "nonce", "mac"))
        issued = float(issued)
    except (KeyError, TypeError, ValueError):
        raise Refused("malformed signature") from None
    if not valid_name(signer) or not isinstance(nonce, str) or not _NONCE.match(nonce) or not isinstance(mac, str):
        raise Refused("malformed signature")
    expected = _mac(key, subject, signer, issued, nonce, canonical(payload))
    if not hmac.compare_digest(expected, mac):
        raise Refused("bad signature")
    age = (time.time() if now is None else now) - issued
    if not -window < age < window:
        raise Refused(f"stale: issued {age:.0f} s ago, the window is {window:.0f} s")
    return Signature(signer=signer, issued=issued, nonce=nonce, mac=mac)


def claim(client: Counter, host: str, signature: Signature, window: float) -> bool:
    """Record the nonce of a message under ``host``'s key; False if it was seen before (a replay)."""
    return bool(client.set(seen_key(host, signature["nonce"]), b"1", nx=True, ex=nonce_ttl(window)))


def nonce_ttl(window: float) -> int:
    """How long a nonce is kept: longer than a message can stay fresh, either side of the clock."""
    return int(2 * window) + 1


# ------------------------------------------------------------------ refusals


def label(origin: object) -> str:
    """An origin fit for a counter's field and a metric's label: a valid name, else ``unknown``."""
    return origin if isinstance(origin, str) and valid_name(origin) else "unknown"


def claimed_signer(signature: object, known: Callable[[str], bool] | None = None) -> str:
    """Who a message says signed it, as a counter's label: ``unsigned`` without a signature, ``unknown``
    for a signer that is no valid name or, with ``known``, not one the receiver has a key for (so a
    forger cannot grow the metric's labels without bound)."""
    if not isinstance(signature, dict):
        return "unsigned"
    signer = label(signature.get("signer"))
    return signer if signer == "unknown" or known is None or known(signer) else "unknown"


def claim_note(signature: object) -> str:
    """The signer a message claims, for the log line, when its label says ``unknown``."""
    signer = signature.get("signer") if isinstance(signature, dict) else None
    return f"claims to be signed by {str(signer)[:64]!r}" if signer is not None else ""


def _printable(text: str, limit: int = 200) -> str:
    """A forger's text made fit for one log line: control characters shown as ``?``, cut to ``limit``."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def refuse(client: Counter | None, kind: str, origin: str, why: str, where: str, detail: str = "") -> None:
    """Log a refused message on one line, with its origin, and count it in ``oar:refused``."""
    kind, origin, why, where, detail = (_printable(part) for part in (kind, origin, why, where, detail))
    logger.warning("refused %s from %s on %s: %s%s", kind, origin, where, why, f" ({detail})" if detail else "")
    if client is None:
        return
    try:
        client.hincrby(Key.REFUSED, f"{kind}:{label(origin)}", 1)
    except Exception as error:  # noqa: BLE001 - the refusal stands even when it cannot be counted
        logger.warning("refusal not counted: %s", error)


# ------------------------------------------------------------------ keys


def head_key_path(keys_dir: Path) -> Path:
    return keys_dir / "head.key"


def node_key_path(keys_dir: Path, host: str) -> Path:
    return keys_dir / "nodes" / f"{host}.key"


def read_key(path: Path) -> bytes | None:
    """A key file's key, None if there is none; a key too short to be one is an error."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    if len(key) < 32:
        raise ValueError(f"the key in {path} is too short")
    return key


def create_keys(keys_dir: Path, hosts: Iterable[str]) -> list[Path]:
    """Make the keys directory (mode 0700), ``head.key`` and each host's key (mode 0600) that are missing.

    Keys already there are kept: running it again for new nodes changes no
    other node's key. The paths created.
    """
    hosts = list(hosts)
    bad = [host for host in hosts if not valid_name(host)]
    if bad:
        raise ValueError(f"not a node name: {bad[0]!r}")
    (keys_dir / "nodes").mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (keys_dir, keys_dir / "nodes"):
        directory.chmod(0o700)
    created = []
    for path in (head_key_path(keys_dir), *(node_key_path(keys_dir, host) for host in hosts)):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        created.append(path)
    return created


class Keyring:
    """The head's keys: its own and every node's, read when first needed.

    Signing is on for the head when ``signing`` is not ``off`` and the keys
    directory holds a ``nodes`` directory; a node without a key file then
    cannot be sent to or believed.
    """

    def __init__(self, keys_dir: Path, enabled: bool) -> None:
        self.dir = keys_dir
        self.enabled = enabled
        self._keys: dict[str, bytes] = {}

    def node(self, host: str) -> bytes | None:
        """``host``'s key, None if it has none (a missing key is looked for again next time)."""
        key = self._keys.get(host)
        if key is None and valid_name(host):
            key = read_key(node_key_path(self.dir, host))
            if key is not None:
                self._keys[host] = key
        return key

    def head(self) -> bytes | None:
        """The head's own key: it signs the reports the head queues itself (recovered from a ping answer)."""
        key = self._keys.get(HEAD)
        if key is None:
            key = read_key(head_key_path(self.dir))
            if key is not None:
                self._keys[HEAD] = key
        return key


def signing_on(config: Settings) -> bool:
    return config.signing.strip().lower() != "off"


@lru_cache(maxsize=4)
def _keyring(keys_dir: str, enabled: bool) -> Keyring:
    return Keyring(Path(keys_dir), enabled)


def head_keyring() -> Keyring:
    """This process's keyring (the head's side)."""
    config = settings()
    keys = config.keys
    return _keyring(str(keys), signing_on(config) and (keys / "nodes").is_dir())


_node_keys: dict[tuple[str, str, str, str], bytes] = {}


def node_key(host: str) -> bytes | None:
    """A node's own key (``OAR_NODE_KEY_FILE``, default ``<keys_dir>/nodes/<host>.key``): None, signing off.

    A key found is kept for the process's life, by the settings that name
    its file (no path built per message: a node signs two reports per job);
    a missing one is looked for at each message, so a node whose key arrives
    later is signed from then on.
    """
    config = settings()
    if not signing_on(config):
        return None
    where = (config.node_key_file, config.keys_dir, config.state_dir, host)
    found = _node_keys.get(where)
    if found is None:
        path = Path(config.node_key_file) if config.node_key_file else node_key_path(config.keys, host)
        found = read_key(path)
        if found is not None:
            _node_keys[where] = found
    return found
