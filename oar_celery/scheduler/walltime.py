"""OAR walltimes: ``H``, ``H:M`` or ``H:M:S`` (hours may exceed 24)."""

from __future__ import annotations

from .errors import RequestError


def parse_walltime(text: str) -> int:
    """Return the walltime in seconds; refuse anything that is not a positive duration."""
    raw = (text or "").strip()
    if not raw:
        raise RequestError("empty walltime")
    parts = raw.split(":")
    if len(parts) > 3:
        raise RequestError(f"bad walltime {raw!r}: expected H, H:M or H:M:S")
    if not all(part.isdigit() and part.isascii() for part in parts):
        raise RequestError(f"bad walltime {raw!r}: expected H, H:M or H:M:S with non-negative integers")
    values = [int(part) for part in parts] + [0] * (3 - len(parts))
    hours, minutes, seconds = values
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise RequestError(f"bad walltime {raw!r}: it must be greater than zero")
    return total


def format_walltime(seconds: float) -> str:
    """OAR's ``H:MM:SS`` form of a duration (hours past 24), what :func:`parse_walltime` reads back."""
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
