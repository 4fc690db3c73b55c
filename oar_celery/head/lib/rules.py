"""Admission rules: ordered checks and rewrites applied to every submission before it is stored.

OAR keeps Python source in the ``admission_rules`` table and ``exec``s it on
every submission. Here a rule is a plain Python callable taking the
:class:`Candidate` (the submission's fields, which it may change) and raising
to refuse it; its exception's first line is the user's one-line error and
nothing is stored. Rules come from three places, loaded once per process:

* OAR3's default rules, built in (:data:`BUILTIN`): default queue, admin queue
  restricted, besteffort type and queue kept together, no besteffort
  reservation, deploy on whole nodes, default walltime, maximum walltime per queue, types checked;
* the admin's modules, named by ``OAR_ADMISSION_RULES`` (``pkg.mod`` takes the
  module's ``ADMISSION_RULES`` list, or else its functions named ``rule_*``;
  ``pkg.mod:func`` takes one function). A rule's ``priority`` attribute orders
  it among the others (the built-in ones are 10 to 150; default 1000);
* declarative rules (:mod:`.declarative`), JSON rows of ``admission_rules``.

Which rules are on is kept in the ``admission_rules`` table (:mod:`.rulebook`).
"""

from __future__ import annotations

import grp
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.types import Moldable
from oar_celery.scheduler.walltime import parse_walltime


@dataclass
class Candidate:
    """What a rule sees of a submission, and may change (OAR3's rule variables)."""

    user: str
    queue: str | None
    types: list[str]
    properties: str | None
    moldables: list[Moldable]
    reservation: float | None
    project: str | None
    name: str | None
    command: str
    session: Session
    config: Settings
    #: lines a rule wants the user to see ("[ADMISSION RULE] ..."), kept in the job's event log
    notes: list[str] = field(default_factory=list)


RuleFunction = Callable[[Candidate], None]


@dataclass(frozen=True)
class Rule:
    """A rule with its name (what ``oar-celery admission`` shows), its order and where it comes from."""

    name: str
    priority: int
    function: RuleFunction
    origin: str
    description: str = ""


# --------------------------------------------------------------------------- the default rules


def default_queue(job: Candidate) -> None:
    """No queue given: ``besteffort`` for a besteffort job, the default queue otherwise (OAR's rule 1)."""
    if not job.queue:
        job.queue = "besteffort" if "besteffort" in job.types else job.config.default_queue


#: OAR3's rule 04: the group whose members (with the admin user and root) may use the ``admin`` queue.
ADMIN_GROUP = "admin"


def in_group(user: str, group: str) -> bool:
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


def admin_queue(job: Candidate) -> None:
    """Only the admin (``OAR_ADMIN_USER``, root) and group ``admin`` may submit to the ``admin`` queue (rule 4)."""
    if job.queue == "admin" and not (job.config.is_admin(job.user) or in_group(job.user, ADMIN_GROUP)):
        raise RequestError(f"only member of the group {ADMIN_GROUP} can submit jobs in the admin queue")


def besteffort_formatting(job: Candidate) -> None:
    """The besteffort type goes to the besteffort queue, and that queue's jobs are besteffort (OAR's rule 6)."""
    if "besteffort" in job.types and job.queue != "besteffort":
        job.queue = "besteffort"
        job.notes.append("[ADMISSION RULE] Automatically redirect in the besteffort queue")
    if job.queue == "besteffort" and "besteffort" not in job.types:
        job.types.append("besteffort")
        job.notes.append("[ADMISSION RULE] Automatically add the besteffort type")


def besteffort_reservation(job: Candidate) -> None:
    """A job cannot be both besteffort and a reservation (OAR's rule 7)."""
    if "besteffort" in job.types and job.reservation is not None:
        raise RequestError("a job cannot both be of type besteffort and be a reservation")


WHOLE_NODE_TYPES = ("deploy", "cosystem")
PART_OF_A_NODE = ("core", "cpu", "thread", "resource_id")


def deploy_whole_nodes(job: Candidate) -> None:
    """deploy and cosystem jobs take whole nodes: no core, cpu, thread or resource_id level (OAR's rule 9)."""
    kinds = [kind for kind in job.types if kind.split("=")[0] in WHOLE_NODE_TYPES]
    if not kinds:
        return
    for moldable in job.moldables:
        for group in moldable.groups:
            for level in group.levels:
                if level.name in PART_OF_A_NODE:
                    raise RequestError(f"{level.name} resource is not allowed with a {kinds[0]} job (whole nodes only)")


def default_walltime(job: Candidate) -> None:
    """A request without a walltime gets ``OAR_DEFAULT_WALLTIME`` (OAR's rule 13)."""
    job.moldables = [m if m.walltime else replace(m, walltime=job.config.default_walltime) for m in job.moldables]


def max_walltime(job: Candidate) -> None:
    """``OAR_QUEUE_MAX_WALLTIME="default=24:00:00,besteffort=2:00:00"``: no longer walltime in those queues."""
    limit = queue_limits(job.config.queue_max_walltime).get(job.queue or "")
    if limit is None:
        return
    for moldable in job.moldables:
        if moldable.walltime > limit:
            raise RequestError(
                f"walltime {_hms(moldable.walltime)} is over the maximum {_hms(limit)} of queue '{job.queue}'"
            )


_TYPES = re.compile(
    r"^(?:container(?:=\w+)?|inner=\w+|deploy(?:=standby)?|cosystem(?:=standby)?|noop|besteffort|idempotent"
    r"|placeholder=\w+|allowed=\w+|token:\w+=\d+"
    r"|timesharing=(?:(?:\*|user),(?:\*|name)|(?:\*|name),(?:\*|user)))$"
)
KNOWN_TYPES = (
    "besteffort, idempotent, timesharing=user|*,name|*, container[=NAME], inner=ID, noop, deploy, cosystem, "
    "placeholder=NAME, allowed=NAME, token:NAME=N"
)


def check_types(job: Candidate) -> None:
    """Every type is one OAR knows (OAR's rule 15)."""
    for kind in job.types:
        if not _TYPES.match(kind):
            raise RequestError(f"unknown job type '{kind}' (known: {KNOWN_TYPES})")


BUILTIN: tuple[tuple[int, RuleFunction], ...] = (
    (10, default_queue),
    (40, admin_queue),
    (60, besteffort_formatting),
    (70, besteffort_reservation),
    (90, deploy_whole_nodes),
    (130, default_walltime),
    (140, max_walltime),
    (150, check_types),
)


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@lru_cache(maxsize=8)
def queue_limits(text: str) -> dict[str, int]:
    """``queue=H:MM:SS,...`` → seconds per queue."""
    limits: dict[str, int] = {}
    for item in text.split(","):
        if item.strip():
            queue, _, value = item.partition("=")
            limits[queue.strip()] = parse_walltime(value.strip())
    return limits


# --------------------------------------------------------------------------- loading


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def _builtin() -> list[Rule]:
    return [Rule(f"oar.{f.__name__}", p, f, "built-in", _first_line(f.__doc__ or "")) for p, f in BUILTIN]


def _from_module(entry: str) -> list[Rule]:
    module_name, _, attribute = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RequestError(f"OAR_ADMISSION_RULES: cannot import {module_name!r} ({exc})") from None
    if attribute:
        functions = [getattr(module, attribute, None)]
    else:
        listed = getattr(module, "ADMISSION_RULES", None)
        functions = list(listed) if listed is not None else [
            value for name, value in vars(module).items() if name.startswith("rule_") and callable(value)
        ]
    rules = []
    for function in functions:
        if not callable(function):
            raise RequestError(f"OAR_ADMISSION_RULES: {entry!r} names no callable")
        name = f"{module_name}.{function.__name__}"
        priority = int(getattr(function, "priority", 1000))
        rules.append(Rule(name, priority, function, module_name, _first_line(function.__doc__ or "")))
    return rules


@lru_cache(maxsize=4)
def loaded_rules(modules: str) -> tuple[Rule, ...]:
    """The built-in rules and those of the admin's modules, in order: imported once per process."""
    rules = _builtin()
    for entry in modules.split(","):
        if entry.strip():
            rules.extend(_from_module(entry.strip()))
    return tuple(sorted(rules, key=lambda rule: rule.priority))


def apply(rules: Sequence[Rule], job: Candidate) -> None:
    """Run the rules in order; a rule that raises refuses the job with its message's first line."""
    for rule in rules:
        try:
            rule.function(job)
        except RequestError:
            raise
        except Exception as exc:  # an admin's rule: any exception is a refusal, never a crash
            message = _first_line(str(exc)) or type(exc).__name__
            raise RequestError(f"admission rule {rule.name}: {message}") from None


def reservation_start(start: float, walltimes: list[int], *, at: float) -> float:
    """A reservation's start: kept if it is still running at ``at``, refused only when entirely over.

    OAR3 keeps the asked start: a reservation whose start is past but whose
    walltime is not over is granted and starts at once, for what remains of it.
    """
    if start + max(walltimes or [0]) <= at:
        raise RequestError("the reservation is entirely in the past (its start plus its walltime is over)")
    return start
