"""Who is asking: credentials that prove a request's user, in the manner of MUNGE.

A request reaches the head through Redis, where anybody who can write could
claim any user. With ``OAR_AUTH_KEY_FILE`` set, the head believes only a
credential: an HMAC, under a key users cannot read, of the user, a time, a
nonce and the request itself. Credentials are made by ``oar-celery authd``, a
small daemon on each machine users submit from; it reads the key and learns
the caller's uid from the kernel (``SO_PEERCRED`` on its Unix socket), never
from the caller. The head refuses a credential that is stale, replayed, or
made for another request. Without a key the head trusts the named user, which
is fit only for a cluster whose broker users cannot reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands ask authd through this module: pathlib is the daemon's and the head's
    from pathlib import Path

#: How long a credential stays good: clock skew between machines plus a queue wait.
LIFETIME = 300.0


class AuthError(Exception):
    """A request whose user could not be proven; the message is the client's one line."""


def read_key(path: str) -> bytes:
    with open(path, "rb") as key_file:
        key = key_file.read().strip()
    if len(key) < 16:
        raise AuthError(f"the authentication key in {path} is too short")
    return key


def create_key(path: Path) -> None:
    """Write a new random key readable by its owner only (``oar-celery up`` and admins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(os.urandom(32).hex() + "\n")


def request_digest(payload: dict[str, Any]) -> str:
    """A stable digest of a request's arguments (the credential itself left out)."""
    plain = {key: value for key, value in payload.items() if key != "credential"}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _mac(key: bytes, user: str, issued: float, nonce: str, digest: str) -> str:
    return hmac.new(key, f"{user}|{issued!r}|{nonce}|{digest}".encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, user: str, digest: str) -> dict[str, Any]:
    """A credential for ``user`` over the request with ``digest`` (what authd answers)."""
    issued = time.time()
    nonce = os.urandom(16).hex()
    return {"user": user, "issued": issued, "nonce": nonce, "mac": _mac(key, user, issued, nonce, digest)}


def verify(key: bytes, credential: Any, digest: str, *, now: float | None = None) -> str:
    """The user a credential proves for this request; AuthError if it proves nothing."""
    if not isinstance(credential, dict):
        raise AuthError("this cluster needs a credential: is 'oar-celery authd' running on this machine?")
    try:
        user, issued, nonce, mac = (credential[k] for k in ("user", "issued", "nonce", "mac"))
        expected = _mac(key, str(user), float(issued), str(nonce), digest)
    except (KeyError, TypeError, ValueError):
        raise AuthError("malformed credential") from None
    if not hmac.compare_digest(expected, str(mac)):
        raise AuthError("the credential does not match the request")
    age = (time.time() if now is None else now) - float(issued)
    if not -LIFETIME < age < LIFETIME:
        raise AuthError("the credential has expired (are the clocks of the machines set right?)")
    return str(user)


# ------------------------------------------------------------------- the client's side


def fetch_credential(socket_path: str, payload: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """Ask this machine's authd for a credential for ``payload``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            sock.sendall(json.dumps({"digest": request_digest(payload)}).encode() + b"\n")
            answer = json.loads(_read_line(sock))
        except (OSError, ValueError) as error:
            raise AuthError(f"cannot get a credential from authd at {socket_path} ({error})") from None
    if "error" in answer:
        raise AuthError(str(answer["error"]))
    return dict(answer["credential"])


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# ------------------------------------------------------------------- the daemon's side


def peer_user(connection: socket.socket) -> str:
    """The user on the other end of a Unix socket, as the kernel says."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", raw)
    return pwd.getpwuid(uid).pw_name


def answer_one(connection: socket.socket, key: bytes) -> None:
    """Serve one credential request on an accepted connection."""
    try:
        connection.settimeout(5.0)
        request = json.loads(_read_line(connection))
        digest = str(request["digest"])
        answer: dict[str, Any] = {"credential": sign(key, peer_user(connection), digest)}
    except (OSError, ValueError, KeyError) as error:
        answer = {"error": f"bad credential request ({error})"}
    connection.sendall(json.dumps(answer).encode() + b"\n")


def serve(socket_path: str, key: bytes) -> None:
    """``oar-celery authd``: answer credential requests on a Unix socket open to every user."""
    import threading
    from pathlib import Path

    path = Path(socket_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        os.chmod(path, 0o666)
        server.listen(128)
        while True:
            connection, _ = server.accept()
            threading.Thread(target=_answer_and_close, args=(connection, key), daemon=True).start()


def _answer_and_close(connection: socket.socket, key: bytes) -> None:
    with connection:
        answer_one(connection, key)


def reply_token(key: bytes, job_id: int) -> str:
    """The secret part of a job's reply keys: the head derives it, the submitter is told it.

    An HMAC under the cluster's key, so the head needs to store nothing to find
    it again; without a key it is a plain digest anyone can compute, as every
    name is on a broker users can read (a cluster without ``OAR_AUTH_KEY_FILE``).
    """
    return hmac.new(key, f"reply|{int(job_id)}".encode(), hashlib.sha256).hexdigest()[:32]
