"""Declarative admission rules: JSON rows of the ``admission_rules`` table, never executed as code.

OAR's table holds Python source that the server ``exec``s. A row here holds
a rule written as data, for what most sites' rules do::

    {"name": "long", "priority": 500,
     "when": {"queue": "long", "user": ["alice", "bob"]},
     "add_types": ["idempotent"], "set_queue": "default", "add_properties": "mem > 64",
     "max_walltime": "48:00:00", "refuse": "the long queue is closed this week"}

``when`` matches every listed field (``user``, ``queue``, ``project``, ``name``,
``type``; a list means any of its values); without ``when`` the rule applies to
every job. The actions run in the order above; ``refuse`` refuses with its
message. ``oar-celery admission add`` checks a rule before it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from oar_celery.db.models import AdmissionRule
from oar_celery.head.lib.rules import Candidate, Rule
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.walltime import parse_walltime

FIELDS = ("user", "queue", "project", "name", "type")
ACTIONS = ("add_types", "set_queue", "add_properties", "max_walltime", "refuse")
ORIGIN = "admission_rules"


def parse(text: str) -> dict[str, Any]:
    """A rule's JSON text, checked: known keys, the right kinds of values."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"a declarative rule must be JSON ({exc.msg})") from None
    if not isinstance(spec, dict):
        raise RequestError("a declarative rule must be a JSON object")
    unknown = set(spec) - {"name", "priority", "when", *ACTIONS}
    if unknown:
        raise RequestError(f"unknown key '{sorted(unknown)[0]}' in a declarative rule")
    when = spec.get("when", {})
    if not isinstance(when, dict) or set(when) - set(FIELDS):
        raise RequestError(f"'when' takes an object of {', '.join(FIELDS)}")
    if not any(key in spec for key in ACTIONS):
        raise RequestError(f"a declarative rule needs an action ({', '.join(ACTIONS)})")
    if "max_walltime" in spec:
        parse_walltime(str(spec["max_walltime"]))
    if not isinstance(spec.get("add_types", []), list):
        raise RequestError("'add_types' takes a list of types")
    int(spec.get("priority", 500))
    return spec


def _values(condition: Any) -> list[str]:
    return [str(v) for v in condition] if isinstance(condition, list) else [str(condition)]


def matches(spec: dict[str, Any], job: Candidate) -> bool:
    for key, condition in spec.get("when", {}).items():
        wanted = _values(condition)
        if key == "type":
            if not any(kind in wanted for kind in job.types):
                return False
        elif str(getattr(job, key) or "") not in wanted:
            return False
    return True


def action(spec: dict[str, Any]) -> Any:
    """The rule as a function of a candidate."""

    def run(job: Candidate) -> None:
        if not matches(spec, job):
            return
        for kind in spec.get("add_types", []):
            if kind not in job.types:
                job.types.append(str(kind))
        if "set_queue" in spec:
            job.queue = str(spec["set_queue"])
        if "add_properties" in spec:
            extra = str(spec["add_properties"])
            job.properties = f"({job.properties}) AND ({extra})" if job.properties else extra
        if "max_walltime" in spec:
            limit = parse_walltime(str(spec["max_walltime"]))
            if any(m.walltime > limit for m in job.moldables):
                raise RequestError(f"walltime over the maximum {spec['max_walltime']} of rule {rule_name_of(spec)}")
        if "refuse" in spec:
            raise RequestError(str(spec["refuse"]))

    return run


def rule_name_of(spec: dict[str, Any], row_id: int | None = None) -> str:
    return f"table.{spec.get('name') or row_id}"


def is_declarative(text: str) -> bool:
    return text.lstrip().startswith("{")


def table_rules(rows: Iterable[AdmissionRule]) -> list[Rule]:
    """The declarative rows of ``admission_rules`` (a row that does not parse is skipped: it was checked when added)."""
    rules = []
    for row in rows:
        if not is_declarative(row.rule):
            continue
        try:
            spec = parse(row.rule)
        except (RequestError, ValueError):
            continue
        rules.append(Rule(rule_name_of(spec, row.id), int(spec.get("priority", row.priority or 500)),
                          action(spec), ORIGIN, ", ".join(k for k in ACTIONS if k in spec)))
    return rules
