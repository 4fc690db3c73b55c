"""``oarsub -S``: the ``#OAR`` directives of a job script, as OAR3's ``scan_script`` reads them.

A site's job-script template carries its submission options in the script
itself::

    #!/bin/bash
    #OAR -l /nodes=2/core=4,walltime=1:00:00
    #OAR -n sweep
    #OAR -t besteffort

Each line starting with ``#OAR`` and white space is one option of oarsub,
written ``-l VALUE``, ``-lVALUE``, ``--resource VALUE`` or ``--resource=VALUE``;
the value is the rest of the line (one pair of surrounding quotes dropped). An
option given on the command line wins over the script's, as in OAR3: a list
option (``-l``, ``-t``, ``-a``) given on the command line replaces the
script's whole list, and the script's ``-p`` filters are joined with ``AND``.

This module is pure (no cluster, no settings): :func:`scan` parses text,
:func:`read_script` reads a file the user may read and execute, and
:func:`merge` fills the options the command line left unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DIRECTIVE = re.compile(r"^#OAR\s+(\S.*?)\s*$")


class ScriptError(ValueError):
    """A job script that cannot be used; the message is one line naming the file and line."""


@dataclass(frozen=True)
class Option:
    """One oarsub option a script may carry: its destination and the kind of value it takes."""

    dest: str
    kind: str  # "text", "int", "append", "append_int", "flag", "and"


#: The directives OAR3 scans, by spelling, with oarsub's destination names.
OPTIONS: dict[str, Option] = {}
for _spellings, _option in (
    (("-l", "--resource"), Option("resource", "append")),
    (("-n", "--name"), Option("name", "text")),
    (("-O", "--stdout"), Option("stdout", "text")),
    (("-E", "--stderr"), Option("stderr", "text")),
    (("-q", "--queue"), Option("queue", "text")),
    (("-p", "--property"), Option("properties", "and")),
    (("-t", "--type"), Option("types", "append")),
    (("-d", "--directory"), Option("directory", "text")),
    (("-a", "--anterior", "--after"), Option("dependencies", "append_int")),
    (("-h", "--hold"), Option("hold", "flag")),
    (("-r", "--reservation"), Option("reservation", "text")),
    (("--project",), Option("project", "text")),
    (("--notify",), Option("notify", "text")),
    (("--checkpoint",), Option("checkpoint", "int")),
    (("--signal",), Option("signal", "text")),
    (("--array",), Option("array", "int")),
    (("--array-param-file",), Option("array_param_file", "text")),
):
    for _spelling in _spellings:
        OPTIONS[_spelling] = _option


@dataclass
class Directives:
    """What a script's ``#OAR`` lines ask for, by oarsub destination, and their text for the initial request."""

    values: dict[str, Any] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split(body: str) -> tuple[str, str]:
    """``-l VALUE`` / ``-lVALUE`` / ``--resource=VALUE`` / ``--resource VALUE`` → (spelling, value)."""
    head, _, rest = body.partition(" ")
    if head.startswith("--"):
        name, equal, value = head.partition("=")
        return name, (value + (" " + rest if rest else "")) if equal else rest
    if head in OPTIONS or len(head) <= 2:
        return head, rest
    return head[:2], head[2:] + (" " + rest if rest else "")


def _value(option: Option, spelling: str, text: str, where: str) -> Any:
    if option.kind == "flag":
        if text:
            raise ScriptError(f"{where}: {spelling} takes no value")
        return True
    if not text:
        raise ScriptError(f"{where}: {spelling} needs a value")
    if option.kind in ("int", "append_int"):
        if not text.isdigit():
            raise ScriptError(f"{where}: {spelling} takes a number, not {text!r}")
        return int(text)
    return text


def scan(text: str, name: str = "script") -> Directives:
    """The directives of a script's text; :class:`ScriptError` names the first bad line."""
    found = Directives()
    for number, line in enumerate(text.splitlines(), start=1):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        where = f"{name}:{number}"
        spelling, raw = _split(match.group(1))
        option = OPTIONS.get(spelling)
        if option is None:
            raise ScriptError(f"{where}: unknown #OAR directive {spelling!r}")
        value = _value(option, spelling, _unquote(raw.strip()), where)
        if option.kind in ("append", "append_int", "and"):
            found.values.setdefault(option.dest, []).append(value)
        else:
            found.values[option.dest] = value
        found.words += [spelling] if option.kind == "flag" else [spelling, str(value)]
    return found


def script_path(command: str, directory: str | None = None) -> Path:
    """The script a ``-S`` command names: its first word, relative to ``directory`` (default: cwd)."""
    words = command.split()
    if not words:
        raise ScriptError("-S needs a script to scan")
    path = Path(words[0]).expanduser()
    return path if path.is_absolute() else Path(directory or os.getcwd()) / path


def read_script(path: Path) -> str:
    """The script's text; it must be a file its user may read and execute."""
    if not path.is_file():
        raise ScriptError(f"job script '{path}' does not exist")
    if not os.access(path, os.R_OK):
        raise ScriptError(f"job script '{path}' is not readable")
    if not os.access(path, os.X_OK):
        raise ScriptError(f"job script '{path}' is not executable (chmod +x it)")
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise ScriptError(f"cannot read job script '{path}' ({exc.strerror or exc})") from None


def _unset(value: Any) -> bool:
    return value is None or value is False or value == []


def merge(options: Mapping[str, Any], directives: Directives) -> dict[str, Any]:
    """The command line's options, with the script's where the command line left them unset."""
    merged = dict(options)
    for dest, value in directives.values.items():
        if not _unset(merged.get(dest)):
            continue
        if dest == "properties":
            value = value[0] if len(value) == 1 else " AND ".join(f"({part})" for part in value)
        merged[dest] = value
    return merged
