"""The rule book: every admission rule, which are on, and their order, as the head applies them.

Rules come from :mod:`.rules` (built in, and the admin's modules) and from the
declarative rows of ``admission_rules`` (:mod:`.declarative`). The table also
records the rules turned off: a row whose ``rule`` is a rule's name and whose
``enabled`` is ``NO`` (a declarative row is turned off in place).
``oar-celery admission list|enable|disable|add`` works on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import AdmissionRule
from oar_celery.head.lib import declarative
from oar_celery.head.lib.rules import Rule, loaded_rules
from oar_celery.scheduler.errors import RequestError


def _rows(session: Session) -> list[AdmissionRule]:
    """The table, read once for both what it adds and what it turns off (one round trip per submission)."""
    return list(session.scalars(select(AdmissionRule)))


def all_rules(session: Session, config: Settings) -> list[Rule]:
    """Every rule, the declarative ones of the table included, in the order they run."""
    return _ordered(_rows(session), config)


def _ordered(rows: list[AdmissionRule], config: Settings) -> list[Rule]:
    rules = [*loaded_rules(config.admission_rules), *declarative.table_rules(rows)]
    return sorted(rules, key=lambda rule: rule.priority)


def disabled(rows: list[AdmissionRule]) -> set[str]:
    """Names of the rules the admin turned off, among the table's rows."""
    off = set()
    for row in rows:
        if row.enabled != "NO":
            continue
        if declarative.is_declarative(row.rule):
            try:
                off.add(declarative.rule_name_of(declarative.parse(row.rule), row.id))
            except (RequestError, ValueError):
                continue
        else:
            off.add(row.rule)
    return off


def active_rules(session: Session, config: Settings) -> list[Rule]:
    """The rules a submission goes through now, in order."""
    rows = _rows(session)
    off = disabled(rows)
    return [rule for rule in _ordered(rows, config) if rule.name not in off]


def _declarative_row(session: Session, name: str) -> AdmissionRule | None:
    for row in session.scalars(select(AdmissionRule)):
        if declarative.is_declarative(row.rule):
            try:
                if declarative.rule_name_of(declarative.parse(row.rule), row.id) == name:
                    return row
            except (RequestError, ValueError):
                continue
    return None


def set_enabled(session: Session, config: Settings, name: str, enabled: bool) -> Rule:
    """Turn one rule on or off by name."""
    known = {rule.name: rule for rule in all_rules(session, config)}
    if name not in known:
        raise RequestError(f"no admission rule named '{name}' (see 'oar-celery admission list')")
    row = _declarative_row(session, name) if known[name].origin == declarative.ORIGIN else None
    if row is None:
        row = session.scalars(select(AdmissionRule).where(AdmissionRule.rule == name)).first()
    if row is None:
        row = AdmissionRule(rule=name, priority=known[name].priority)
        session.add(row)
    row.enabled = "YES" if enabled else "NO"
    return known[name]


def add_declarative(session: Session, text: str) -> str:
    """Store a declarative rule after checking it; its name."""
    spec = declarative.parse(text)
    row = AdmissionRule(rule=text.strip(), priority=int(spec.get("priority", 500)), enabled="YES")
    session.add(row)
    session.flush()
    return declarative.rule_name_of(spec, row.id)


def describe(session: Session, config: Settings) -> list[dict[str, Any]]:
    """Every rule with its state, for ``oar-celery admission list``."""
    rows = _rows(session)
    off = disabled(rows)
    return [
        {"name": r.name, "priority": r.priority, "enabled": r.name not in off, "origin": r.origin,
         "description": r.description}
        for r in _ordered(rows, config)
    ]
