"""The head's side of reply tokens: where the Runner answers a waiting ``oarsub`` (see ``names.reply_key``)."""

from __future__ import annotations

from functools import lru_cache

from oar_celery.config import settings
from oar_celery.protocol.auth import read_key, reply_token


@lru_cache(maxsize=2)
def _key(path: str) -> bytes:
    return read_key(path) if path else b""


def token(job_id: int) -> str:
    """Job ``job_id``'s reply token, under this cluster's authentication key."""
    return reply_token(_key(settings().auth_key_file), job_id)
