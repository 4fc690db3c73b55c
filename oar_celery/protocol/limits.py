"""Bounds on what a submission may carry, checked before any database work, on both ends.

The command checks them so its user hears at once; the head checks them
again, first thing, because a forged request skips the command. Each refusal
is one line naming the limit and its setting. The bounds: the command's size
(``OAR_MAX_COMMAND_SIZE``, 64 KiB), the walltime (``OAR_MAX_WALLTIME``, one
year), the jobs of an array (``OAR_MAX_ARRAY_SIZE``, 100,000), the nesting of a
property filter's parentheses (``OAR_MAX_FILTER_DEPTH``)
and control characters: none in names and other one-line fields, none but
tab and newline in the command (a multi-line shell command is a command).
A filter nested deeper than the parser's recursion would otherwise crash it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from oar_celery.config import Settings

#: Control characters (C0, DEL, C1): never in a one-line field; in a command, all but tab and newline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_COMMAND_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: The one-line text fields of a submission.
ONE_LINE_FIELDS = ("name", "project", "queue", "directory", "stdout", "stderr", "notify", "reservation",
                   "properties", "user")
_WALLTIME = re.compile(r"(?:^|,)\s*walltime\s*=\s*([^,]*)", re.IGNORECASE)


class LimitError(ValueError):
    """A request over one of the limits; the message is the user's one line."""


class Limits:
    """The three bounds (a plain class: a user command pays for no generated code)."""

    __slots__ = ("max_command_size", "max_walltime", "max_filter_depth", "max_array_size")

    def __init__(self, *, max_command_size: int = 64 * 1024, max_walltime: int = 366 * 24 * 3600,
                 max_filter_depth: int = 16, max_array_size: int = 100_000) -> None:
        self.max_command_size = max_command_size
        self.max_walltime = max_walltime
        self.max_filter_depth = max_filter_depth
        self.max_array_size = max_array_size


def limits_of(config: Settings) -> Limits:
    return Limits(max_command_size=config.max_command_size, max_walltime=config.max_walltime,
                  max_filter_depth=config.max_filter_depth, max_array_size=config.max_array_size)


def filter_depth(text: str) -> int:
    """How deeply the parentheses and braces of a filter nest (quoted text left out)."""
    depth = deepest = 0
    quote = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "({":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}":
            depth -= 1
    return deepest


def walltime_seconds(text: str) -> int | None:
    """``H[:M[:S]]`` in seconds, None when malformed (the parser says why later); no huge numbers parsed."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() and len(p) <= 12 for p in parts):
        return None
    values = [int(p) for p in parts] + [0] * (3 - len(parts))
    return values[0] * 3600 + values[1] * 60 + values[2]


def control_character(text: str, *, command: bool = False) -> str | None:
    """The first control character of ``text`` as an escape (``\\x1b``), or None."""
    found = (_COMMAND_CONTROL if command else _CONTROL).search(text)
    return f"\\x{ord(found.group()):02x}" if found else None


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def check_request(request: Mapping[str, Any], limits: Limits) -> None:
    """Raise LimitError for the first limit ``request`` is over."""
    command = request.get("command")
    if isinstance(command, str):
        size = len(command.encode("utf-8", "surrogatepass"))
        if size > limits.max_command_size:
            raise LimitError(f"the command is {size} bytes, over the limit of {limits.max_command_size} "
                             "(OAR_MAX_COMMAND_SIZE)")
        bad = control_character(command, command=True)
        if bad:
            raise LimitError(f"the command holds the control character {bad}: only tab and newline are allowed")
    for field in ONE_LINE_FIELDS:
        for text in _strings(request.get(field)):
            bad = control_character(text)
            if bad:
                raise LimitError(f"the {field} holds the control character {bad}: none is allowed")
    for field in ("types", "resources", "array_params"):
        for text in _strings(request.get(field)):
            bad = control_character(text)
            if bad:
                raise LimitError(f"the {field} hold the control character {bad}: none is allowed")
    _check_array(request, limits)
    _check_resources(request, limits)


def _check_array(request: Mapping[str, Any], limits: Limits) -> None:
    array, params = request.get("array"), request.get("array_params")
    jobs = max(array if isinstance(array, int) and not isinstance(array, bool) else 0,
               len(params) if isinstance(params, list) else 0)
    if jobs > limits.max_array_size:
        raise LimitError(f"an array of {jobs} jobs is over the limit of {limits.max_array_size} "
                         "(OAR_MAX_ARRAY_SIZE)")


def _check_resources(request: Mapping[str, Any], limits: Limits) -> None:
    filters = [*_strings(request.get("resources")), *_strings(request.get("properties"))]
    for text in filters:
        if filter_depth(text) > limits.max_filter_depth:
            raise LimitError(f"a property filter nests deeper than {limits.max_filter_depth} levels "
                             "(OAR_MAX_FILTER_DEPTH)")
    for text in _strings(request.get("resources")):
        for raw in _WALLTIME.findall(text):
            seconds = walltime_seconds(raw)
            if (seconds is None and raw.strip().replace(":", "").isdigit()) or (
                    seconds is not None and seconds > limits.max_walltime):
                raise LimitError(f"the walltime {raw.strip()[:40]} is over the limit of "
                                 f"{limits.max_walltime // 3600} hours (OAR_MAX_WALLTIME)")


def limit_problem(request: Any, limits: Limits) -> str | None:
    """The one line saying which limit ``request`` is over, or None (a non-dict is left to admission)."""
    try:
        if isinstance(request, Mapping):
            check_request(request, limits)
    except LimitError as error:
        return str(error)
    return None
