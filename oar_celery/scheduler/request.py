"""OAR's ``-l`` resource language.

One ``-l`` value is one moldable alternative::

    [{filter}][/]level=count[/level=count...][+ group ...][,walltime=H[:M[:S]]]

``nodes`` is OAR's alias for ``network_address``; ``count`` is a positive
integer, ``ALL`` (every matching resource at that level) or ``BEST`` (as many
as are free, at least one). A value made of a walltime only asks for one
resource, as OAR does. The text is split with a small scanner that knows about
braces and quotes, because filters may contain ``,`` and ``+``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import RequestError
from .filters import compile_filter
from .types import Count, Level, Moldable, ResourceGroup
from .walltime import parse_walltime

ALIASES = {"nodes": "network_address"}
DEFAULT_LEVELS = (Level("resource_id", 1),)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def split_top_level(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside ``{...}`` and quotes; refuse unbalanced braces."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
            if depth > 1:
                raise RequestError(f"nested '{{' in -l {text!r}")
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise RequestError(f"unbalanced '}}' in -l {text!r}")
        elif ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote:
        raise RequestError(f"unterminated string in -l {text!r}")
    if depth:
        raise RequestError(f"unbalanced '{{' in -l {text!r}")
    parts.append(text[start:])
    return parts


def _closing_brace(body: str) -> int:
    """Index of the ``}`` that closes the filter opening ``body``, ``-1`` if none."""
    quote = ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "}":
            return i
    return -1


def _parse_count(raw: str, step: str, text: str) -> Count:
    value = raw.strip()
    if value.upper() in ("ALL", "BEST"):
        return "ALL" if value.upper() == "ALL" else "BEST"
    if not (value.isascii() and value.isdigit()):
        raise RequestError(f"bad count in '{step}' of -l {text!r}: expected a positive integer, ALL or BEST")
    count = int(value)
    if count <= 0:
        raise RequestError(f"bad count in '{step}' of -l {text!r}: it must be at least 1")
    return count


def _level_name(raw: str, step: str, text: str, labels: Sequence[str]) -> str:
    name = raw.strip()
    if not name:
        raise RequestError(f"missing resource type in '{step}' of -l {text!r}")
    if not _NAME.match(name):
        raise RequestError(f"bad resource type '{name}' in -l {text!r}")
    if name in labels:
        return name
    if name in ALIASES and (ALIASES[name] in labels or name in labels):
        return ALIASES[name]
    raise RequestError(f"unknown resource type '{name}' in -l {text!r}")


def _parse_group(group: str, text: str, labels: Sequence[str], columns: Mapping[str, str] | None) -> ResourceGroup:
    body = group.strip()
    property_filter: str | None = None
    if body.startswith("{"):
        close = _closing_brace(body)
        if close < 0:
            raise RequestError(f"unbalanced '{{' in -l {text!r}")
        property_filter = body[1:close].strip() or None
        body = body[close + 1 :].strip()
        if property_filter is not None:
            compile_filter(property_filter, columns)  # refuse bad filters at submission
    if "{" in body or "}" in body:
        raise RequestError(f"a {{filter}} must come first in its group in -l {text!r}")
    if not body:
        raise RequestError(f"missing resources in -l {text!r}")
    if body.startswith("/"):
        body = body[1:]
    levels: list[Level] = []
    for step in body.split("/"):
        if "=" not in step:
            raise RequestError(f"bad step '{step}' in -l {text!r}: expected type=count")
        name, _, count = step.partition("=")
        levels.append(Level(_level_name(name, step, text, labels), _parse_count(count, step, text)))
    names = [level.name for level in levels]
    if len(set(names)) != len(names):
        raise RequestError(f"a resource type appears twice in one group of -l {text!r}")
    return ResourceGroup(tuple(levels), property_filter)


def parse_resource_request(
    text: str,
    *,
    default_walltime: int,
    hierarchy_labels: Sequence[str],
    columns: Mapping[str, str] | None = None,
    moldable_id: int = 0,
) -> Moldable:
    """Parse one ``-l`` value into a :class:`Moldable`.

    ``columns`` (name → type) also checks the column names used in
    ``{filters}``; without it only their syntax is checked.
    """
    raw = (text or "").strip()
    if not raw:
        raise RequestError("empty resource request (-l)")
    if "\n" in raw or "\r" in raw:
        raise RequestError("a resource request (-l) must be a single line")
    pieces = split_top_level(raw, ",")
    walltime = default_walltime
    resources = pieces[0].strip()
    options = pieces[1:]
    if resources.lower().startswith("walltime="):  # "-l walltime=2": one resource
        options, resources = [resources, *options], ""
    seen_walltime = False
    for option in options:
        key, _, value = option.strip().partition("=")
        if key.strip().lower() != "walltime" or not _:
            raise RequestError(
                f"unexpected '{option.strip()}' in -l {raw!r}: only walltime=... may follow the resources"
            )
        if seen_walltime:
            raise RequestError(f"walltime given twice in -l {raw!r}")
        walltime, seen_walltime = parse_walltime(value), True
    if resources:
        groups = tuple(_parse_group(group, raw, hierarchy_labels, columns) for group in split_top_level(resources, "+"))
    elif seen_walltime:
        groups = (ResourceGroup(DEFAULT_LEVELS),)
    else:
        raise RequestError(f"missing resources in -l {raw!r}")
    if walltime <= 0 and (seen_walltime or default_walltime):  # default 0: left for the admission rules
        raise RequestError("the walltime must be greater than zero")
    return Moldable(groups=groups, walltime=walltime, moldable_id=moldable_id)


def parse_moldables(
    options: list[str],
    *,
    default_walltime: int,
    hierarchy_labels: Sequence[str],
    columns: Mapping[str, str] | None = None,
    default_request: str = "/resource_id=1",
) -> list[Moldable]:
    """Parse every ``-l`` option; several options are moldable alternatives, numbered 0..n-1."""
    texts = options or [default_request]
    return [
        parse_resource_request(
            text,
            default_walltime=default_walltime,
            hierarchy_labels=hierarchy_labels,
            columns=columns,
            moldable_id=index,
        )
        for index, text in enumerate(texts)
    ]
