"""Who calls the REST API: OAR3's two ways, a token or the front web server's word.

- **Tokens**: ``Authorization: Bearer <JWT>``, HS256 under ``OAR_API_SECRET_KEY``,
  carrying ``{"user", "date", "exp"}`` as OAR3 makes them (``oar-celery api token
  USER``, ``GET /get_new_token``). The admin revokes tokens issued before a date
  with OAR3's revocation file (``OAR_API_REVOKED_TOKENS``: ``{"global": date,
  "revoked": {user: date}}``, UTC dates ``YYYY-MM-DD HH:MM:SS``), read again
  whenever it changes.
- **The front web server's identity** (OAR3's ``API_TRUST_IDENT``): the
  ``X-Remote-Ident`` header of a server that authenticated the user (Apache,
  nginx). Anybody can write a header, so it is believed only over the API's
  Unix socket (``OAR_API_SOCKET``, in a directory only the web server enters)
  or from an address of ``OAR_API_TRUSTED_PROXIES``; from anywhere else it is
  ignored.

The user found is named in the head requests. When the cluster proves its
users (``OAR_AUTH_KEY_FILE``), this head-side process signs each request for
that user with the cluster key, as authd does for the commands: the head then
checks ownership exactly as for ``oardel`` or ``oarhold``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from typing import Any

from fastapi import Request

from oar_celery.api.errors import ApiError
from oar_celery.config import Settings

IDENT_HEADER = "x-remote-ident"
#: What a web server puts in the header when it knows nobody (OAR3 ignores these).
_NOBODY = ("", "unknown", "(null)")
_DATE = "%Y-%m-%d %H:%M:%S"


def create_token(user: str, config: Settings, *, now: datetime.datetime | None = None) -> str:
    """A token for ``user``, as OAR3's ``create_access_token``."""
    import jwt

    if not config.api_secret_key:
        raise ApiError(404, "tokens are not enabled on this cluster (no OAR_API_SECRET_KEY)")
    issued = now or datetime.datetime.now(datetime.UTC)
    claims = {"user": user, "date": issued.strftime(_DATE),
              "exp": issued + datetime.timedelta(minutes=config.api_token_minutes)}
    return jwt.encode(claims, config.api_secret_key, algorithm="HS256")


def token_user(token: str, config: Settings) -> str:
    """The user a valid, unrevoked token names; 401 otherwise (OAR3's answers)."""
    import jwt

    if not config.api_secret_key:
        raise ApiError(401, "Could not validate credentials (tokens are not enabled)")
    try:
        claims = jwt.decode(token, config.api_secret_key, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise ApiError(401, "Could not validate credentials") from None
    user, issued = claims.get("user"), _parse_date(claims.get("date"))
    if not isinstance(user, str) or not user or issued is None:
        raise ApiError(401, "Could not validate credentials")
    if revoked(user, issued, config.api_revoked_tokens):
        raise ApiError(401, "Token not valid anymore (revoked by an admin)")
    return user


def _parse_date(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(str(text), _DATE).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


_revocations: dict[str, tuple[float, dict[str, Any]]] = {}


def revocations(path: str) -> dict[str, Any]:
    """The revocation file, read again when its modification time changes; a broken file revokes everything."""
    if not path:
        return {}
    try:
        stamp = os.stat(path).st_mtime
    except OSError:
        return {}
    cached = _revocations.get(path)
    if cached is None or cached[0] != stamp:
        try:
            content = json.loads(open(path).read())  # noqa: SIM115 - a small file read whole
            if not isinstance(content, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            content = {"global": "9999-12-31 23:59:59"}
        _revocations[path] = (stamp, content)
    return _revocations[path][1]


def revoked(user: str, issued: datetime.datetime, path: str) -> bool:
    """Whether a token of ``user`` issued at ``issued`` was revoked, for everybody or for this user."""
    content = revocations(path)
    users = content.get("revoked")
    users = users if isinstance(users, dict) else {}
    for date in (content.get("global"), users.get(user)):
        limit = _parse_date(date) if date else None
        if limit is not None and issued < limit:
            return True
    return False


def trusted_peer(request: Request, config: Settings) -> bool:
    """Whether this connection comes from the front web server: the Unix socket, or a listed address."""
    client = request.scope.get("client")
    if client is None or not client[0]:
        return bool(config.api_socket)
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    for entry in config.api_trusted_proxies.split(","):
        entry = entry.strip()
        if entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def identify(request: Request, config: Settings) -> str | None:
    """The caller's user, or None for an anonymous call; 401 for a bad token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Could not validate credentials (expected 'Authorization: Bearer <token>')")
        return token_user(token.strip(), config)
    ident = request.headers.get(IDENT_HEADER)
    if ident is not None and config.api_trust_ident and ident.strip() not in _NOBODY and trusted_peer(request, config):
        return ident.strip()
    return None


def authenticated(request: Request, config: Settings) -> str:
    """The caller's user; 403 ``Not authenticated`` (OAR3's answer) for an anonymous call."""
    user = identify(request, config)
    if user is None:
        raise ApiError(403, "Not authenticated")
    return user
