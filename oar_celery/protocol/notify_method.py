"""OAR's ``--notify`` methods: ``[TAGS]mail:address`` and ``[TAGS]exec:/path/script args``.

One parser serves the three places that read them: ``oarsub`` checks the text
before sending it, admission refuses a bad one on the head, and Judas finds in
it which events to tell and how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oar_celery.scheduler.errors import RequestError

TAGS = ("RUNNING", "END", "ERROR", "INFO", "SUSPENDED", "RESUMING")
_METHOD = re.compile(r"^(?:\[(?P<tags>[A-Z,]*)\])?(?P<method>mail|exec):(?P<target>.*)$", re.S)
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class NotifyMethod:
    """How and when a job's user wants to be told: ``method`` is ``mail`` or ``exec``."""

    method: str
    target: str
    tags: tuple[str, ...]


def parse_notify(text: str) -> NotifyMethod:
    """Parse a ``--notify`` text; RequestError with one line if it is malformed."""
    match = _METHOD.match(text.strip())
    if match is None:
        raise RequestError(f"bad --notify '{text}' (expected mail:ADDRESS or exec:COMMAND)")
    tags = tuple(t for t in (match.group("tags") or "").split(",") if t)
    unknown = [t for t in tags if t not in TAGS]
    if unknown:
        raise RequestError(f"unknown --notify tag '{unknown[0]}' (known: {','.join(TAGS)})")
    method, target = match.group("method"), match.group("target").strip()
    if not target:
        raise RequestError(f"empty --notify {method} target")
    if method == "mail" and not _ADDRESS.fullmatch(target):
        raise RequestError(f"bad --notify mail address '{target}'")
    return NotifyMethod(method, target, tags or TAGS)
