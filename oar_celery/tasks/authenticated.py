"""The base of every head task that acts for a user: the user is proven, not claimed.

With ``OAR_AUTH_KEY_FILE`` set, a request must carry a credential from
``oar-celery authd`` (:mod:`oar_celery.protocol.auth`); the user it proves replaces
whatever user the request names, and a stale, replayed or forged one is
answered with a one-line error instead of being run.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task

from oar_celery.config import settings
from oar_celery.protocol.auth import LIFETIME, AuthError, read_key, request_digest, verify
from oar_celery.protocol.names import nonce_key

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _key(path: str) -> bytes:
    return read_key(path)


def proven_user(kwargs: dict[str, Any]) -> str:
    """Check a request's credential: the user it proves. Raises AuthError."""
    from oar_celery.protocol.bus import broker_redis

    credential = kwargs.get("credential")
    user = verify(_key(settings().auth_key_file), credential, request_digest(kwargs))
    assert isinstance(credential, dict)  # verify refuses anything else
    if not broker_redis().set(nonce_key(str(credential["nonce"])), "1", nx=True, ex=int(2 * LIFETIME)):
        raise AuthError("this credential was already used")
    return user


def with_user(kwargs: dict[str, Any], user: str) -> dict[str, Any]:
    """The request's arguments with every user field set to ``user``."""
    changed = {key: value for key, value in kwargs.items() if key != "credential"}
    if "user" in changed:
        changed["user"] = user
    if isinstance(changed.get("request"), dict):
        changed["request"] = {**changed["request"], "user": user}
    if isinstance(changed.get("requests"), list):
        changed["requests"] = [{**r, "user": user} if isinstance(r, dict) else r for r in changed["requests"]]
    return changed


class AuthenticatedTask(Task):
    """A head task whose user comes from a verified credential when the cluster has a key."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if settings().auth_key_file:
            try:
                kwargs = with_user(kwargs, proven_user(kwargs))
            except AuthError as error:
                logger.warning("%s refused: %s", self.name, error)
                return {"error": str(error)}
        else:
            kwargs.pop("credential", None)
        return super().__call__(*args, **kwargs)
