"""OAR3's quotas: limits on what jobs of a queue, project, type or user hold at any time of the Gantt.

Rules come from OAR3's JSON file (``QUOTAS_CONF_FILE``)::

    {"quotas": {"*,*,*,*": [120, -1, -1], "*,*,*,/": [16, 4, 100], "*,projA,*,john": ["0.5*ALL", -1, -1]},
     "job_types": ["besteffort"],
     "periodical": [["08:00-19:00 mon-fri * *", "workday", "office hours"], ["* * * *", "night", "otherwise"]],
     "oneshot": [["2026-12-24 00:00", "2026-12-27 00:00", "holiday", "Christmas"]],
     "workday": {...rules...}, "night": {...}, "holiday": {...}}

A rule's key is ``queue,project,job_type,user``: a value, ``*`` (all jobs
together) or ``/`` (each value on its own, not for the type); its limits are
busy resources, running jobs and resource-hours, ``-1`` for none; a number
may be ``ALL`` or ``F*ALL`` (the cluster's resources). At any instant of the
Gantt the jobs a rule counts together may hold no more than its limits; of the
rules that match a job, the most specific one applies (a value before ``/``
before ``*``, as OAR3's ``find_applicable_rule``). Resource-hours count each
job's resources × walltime while it is placed, as OAR3 counts them.

Temporal quotas: ``periodical`` entries map the hours and days of a week
(local time) to a rule set, ``* * * *`` being the default; ``oneshot`` dates
override them. A window that crosses a period boundary is checked against
each period's rules. Besteffort jobs count only in the besteffort queue.

Pure: the head reads the file (and reads it again when it changes) and hands
:class:`Quotas` to :func:`oar_celery.scheduler.schedule`. A job the quotas
hold back is placed where they allow it, with a note naming the rule.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .types import Allocation, Job

WEEK = 7 * 86400
DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
KINDS = ("nb resources", "nb jobs", "resources hours")
#: Fields of a rule key and of a counter key: queue, project, job type, user.
Key = tuple[str, str, str, str]
Limits = tuple[int, int, int]  # resources, jobs, resource-seconds (-1: none)


class QuotasError(ValueError):
    """A quotas file that cannot be used, with what is wrong in it."""


def _number(value: Any, all_value: int) -> int:
    """``int | float | "ALL" | "F*ALL"`` → int, as OAR3's ``alphanum_to_int``."""
    if isinstance(value, bool):
        raise QuotasError(f"bad quota value {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    factor = 1.0
    if "*" in text:
        head, _, text = text.partition("*")
        factor = float(head)
    try:
        return int(factor * (all_value if text == "ALL" else float(text)))
    except ValueError:
        raise QuotasError(f"bad quota value {value!r}: a number, ALL or F*ALL") from None


def parse_rules(rules: Mapping[str, Any], all_value: int) -> dict[Key, Limits]:
    """``{"q,p,t,u": [resources, jobs, hours]}`` → rule keys and limits (hours as seconds)."""
    parsed: dict[Key, Limits] = {}
    if not isinstance(rules, Mapping):
        raise QuotasError("a rule set must be an object of \"queue,project,type,user\": [r, j, h]")
    for text, value in rules.items():
        fields = tuple(part.strip() for part in str(text).split(","))
        if len(fields) != 4 or not all(fields):
            raise QuotasError(f"bad quota rule {text!r}: expected queue,project,job_type,user")
        if fields[2] == "/":
            raise QuotasError(f"bad quota rule {text!r}: '/' cannot stand for the job type")
        values = value if isinstance(value, list) else [value, -1, -1]
        if len(values) != 3:
            raise QuotasError(f"bad quota limits for {text!r}: expected [resources, jobs, hours]")
        resources, jobs, hours = (_number(v, all_value) for v in values)
        parsed[(fields[0], fields[1], fields[2], fields[3])] = (resources, jobs, hours * 3600 if hours >= 0 else -1)
    return parsed


def _clock(text: str) -> int:
    hours, _, minutes = text.partition(":")
    if not (0 <= int(hours) <= 24 and 0 <= int(minutes or 0) < 60):
        raise ValueError(text)
    return int(hours) * 3600 + int(minutes or 0) * 60


def parse_periodical(entry: str) -> list[tuple[int, int]]:
    """``"08:00-19:00 mon-fri * *"`` → (start, duration) in seconds from Monday 00:00, as OAR3 reads it."""
    try:
        hours, days, mday, month = entry.split()
    except ValueError:
        raise QuotasError(f"bad periodical {entry!r}: expected 'HH:MM-HH:MM DAYS * *'") from None
    if mday != "*" or month != "*":
        raise QuotasError(f"bad periodical {entry!r}: days of the month and months are not supported")
    try:
        if hours == "*":
            begin, duration = 0, 86400
        else:
            first, _, last = hours.partition("-")
            begin = _clock(first)
            end = _clock(last)
            duration = (end or 86400) - begin
        if days == "*":
            weekdays = list(range(7))
        elif "-" in days:
            d0, d1 = (DAYS[d] for d in days.split("-"))
            if hours == "*":
                weekdays, duration = [d0], 86400 * ((d1 - d0) % 7 + 1)
            else:
                weekdays = list(range(d0, d1 + 1))
        else:
            weekdays = [DAYS[d] for d in days.split(",")]
    except (KeyError, ValueError):
        raise QuotasError(f"bad periodical {entry!r}") from None
    if duration <= 0:
        raise QuotasError(f"bad periodical {entry!r}: it ends before it begins")
    spans: list[tuple[int, int]] = []
    for day in weekdays:
        start = 86400 * day + begin
        if start + duration > WEEK:  # wraps around to Monday
            spans.append((0, start + duration - WEEK))
            spans.append((start, WEEK - start))
        else:
            spans.append((start, duration))
    return spans


def _date(text: str) -> int:
    try:
        return int(time.mktime(time.strptime(text.strip(), "%Y-%m-%d %H:%M")))
    except ValueError:
        raise QuotasError(f"bad oneshot date {text!r}: expected 'YYYY-MM-DD hh:mm'") from None


@dataclass
class Calendar:
    """Which rule set is in force when: the week's periods, then one-shot date ranges over them."""

    periods: list[tuple[int, int, str]]  # start in the week, end in the week, rule set
    oneshots: list[tuple[int, int, str]]  # start, end (epochs), rule set
    default: str | None

    def at(self, t: int) -> tuple[str | None, int]:
        """The rule set in force at ``t`` and when it next may change."""
        for start, end, oneshot in self.oneshots:
            if start <= t < end:
                return oneshot, end
        local = time.localtime(t)
        midnight = int(time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1)))
        week_start = midnight - local.tm_wday * 86400
        offset = t - week_start
        name: str | None = self.default
        until = week_start + WEEK
        for start, end, period in self.periods:
            if start <= offset < end:
                name, until = period, week_start + end
                break
            if start > offset:
                until = min(until, week_start + start)
        upcoming = [start for start, _, _ in self.oneshots if start > t]
        return name, min([until, *upcoming])


@dataclass
class Quotas:
    """Parsed quotas: the rule sets, which one is in force when, and the job types rules may name."""

    rule_sets: dict[str | None, dict[Key, Limits]]
    calendar: Calendar | None = None
    job_types: tuple[str, ...] = ("*",)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], all_value: int) -> Quotas:
        """OAR3's quotas file (see the module docstring); ``all_value`` is what ``ALL`` stands for."""
        if not isinstance(data, Mapping):
            raise QuotasError("the quotas file must hold a JSON object")
        sets: dict[str | None, dict[Key, Limits]] = {None: parse_rules(data.get("quotas", {}), all_value)}
        calendar = None
        if "periodical" in data or "oneshot" in data:
            calendar = _calendar(data, sets, all_value)
        types = data.get("job_types", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise QuotasError("job_types must be a list of type names")
        return cls(sets, calendar, ("*", *types))

    def rules_at(self, t: int) -> tuple[dict[Key, Limits], int | None]:
        """The rules in force at ``t`` and when they may change (None: never)."""
        if self.calendar is None:
            return self.rule_sets[None], None
        name, until = self.calendar.at(t)
        return self.rule_sets.get(name, self.rule_sets[None]), until

    def all_rules(self) -> Iterable[dict[Key, Limits]]:
        return self.rule_sets.values()


def _calendar(data: Mapping[str, Any], sets: dict[str | None, dict[Key, Limits]], all_value: int) -> Calendar:
    def rule_set(name: object) -> str:
        if not isinstance(name, str) or not isinstance(data.get(name), Mapping):
            raise QuotasError(f"rule set {name!r} is named by a period but not defined")
        if name not in sets:
            sets[name] = parse_rules(data[name], all_value)
        return name

    periods: list[tuple[int, int, str]] = []
    default = None
    for entry in data.get("periodical", []):
        if not isinstance(entry, list) or len(entry) < 2:
            raise QuotasError(f"bad periodical entry {entry!r}: expected [\"when\", \"rule set\", ...]")
        if entry[0] in ("* * * *", "default"):
            default = rule_set(entry[1])
            continue
        name = rule_set(entry[1])
        periods += [(start, start + duration, name) for start, duration in parse_periodical(str(entry[0]))]
    oneshots: list[tuple[int, int, str]] = []
    for entry in data.get("oneshot", []):
        if not isinstance(entry, list) or len(entry) < 3:
            raise QuotasError(f"bad oneshot entry {entry!r}: expected [\"from\", \"to\", \"rule set\", ...]")
        oneshots.append((_date(entry[0]), _date(entry[1]), rule_set(entry[2])))
    return Calendar(sorted(periods), sorted(oneshots), default)


class Profile:
    """Resources, jobs and resource-seconds held over time by the jobs one counter counts: a step function.

    One list per kind (``levels[kind][k]`` holds during ``[times[k], times[k+1])``), so that a check
    scans a window with ``max`` and ``min`` over slices, in C, instead of step by step in Python.
    """

    #: steps looked at by one ``min`` when looking for the end of a stretch over a limit
    CHUNK = 64

    def __init__(self) -> None:
        self.times: list[int] = [0]
        self.levels: tuple[list[int], list[int], list[int]] = ([0], [0], [0])

    def _split(self, t: int) -> int:
        times = self.times
        k = bisect_right(times, t) - 1
        if times[k] != t:
            k += 1
            times.insert(k, t)
            for values in self.levels:
                values.insert(k, values[k - 1])
        return k

    def add(self, start: int, stop: int, amounts: Sequence[int]) -> None:
        first, last = self._split(start), self._split(stop)
        for values, amount in zip(self.levels, amounts, strict=True):
            if amount:
                values[first:last] = [value + amount for value in values[first:last]]

    def over(self, start: int, stop: int, amounts: Sequence[int], limits: Limits) -> tuple[int, int] | None:
        """The first limit the job would pass inside ``[start, stop)``: (kind, the next time it fits that
        limit again, -1 if never), or None. Of two limits passed at one step, the first kind is named."""
        times = self.times
        k = max(0, bisect_right(times, start) - 1)
        end = max(bisect_left(times, stop), k + 1)
        first: tuple[int, int, int] | None = None  # step, kind, room
        for kind in range(3):
            limit = limits[kind]
            if limit < 0:
                continue
            room = limit - amounts[kind]
            values = self.levels[kind]
            if values[k] > room:  # most often: the counter is already full where the job would start
                step = k
            else:
                window = values[k:end]
                if max(window) <= room:
                    continue
                step = k + next(i for i, value in enumerate(window) if value > room)
            if first is None or step < first[0]:
                first = (step, kind, room)
                if step == k:
                    break  # no later kind can be passed earlier; of two at one step the first is named
        if first is None:
            return None
        step, kind, room = first
        after = self._first_within(self.levels[kind], step + 1, room)
        return kind, -1 if after < 0 else times[after]

    def passed_before(self, t: int, amounts: Sequence[int], limits: Limits) -> int:
        """The kind of the one limit the job would pass during the step that ends at ``t``; -1 if it
        would pass none or several there, or ``t`` ends no step."""
        times = self.times
        k = bisect_left(times, t)
        if k == 0 or k == len(times) or times[k] != t:
            return -1
        passed = [kind for kind in range(3)
                  if limits[kind] >= 0 and self.levels[kind][k - 1] > limits[kind] - amounts[kind]]
        return passed[0] if len(passed) == 1 else -1

    def _first_within(self, values: list[int], begin: int, room: int) -> int:
        """The first step from ``begin`` on at or below ``room``, -1 if none: a chunk at a time."""
        chunk = self.CHUNK
        if begin < len(values) and values[begin] <= room:
            return begin
        for offset in range(begin, len(values), chunk):
            part = values[offset:offset + chunk]
            if min(part) <= room:
                return offset + next(i for i, value in enumerate(part) if value <= room)
        return -1


def _walk(profile: Profile, later: int, walltime: int, amounts: Sequence[int], limits: Limits,
          kind: int = -1) -> tuple[int, int]:
    """From ``later`` on, to the start each refusal names, up to the first start ``profile`` allows.

    That start (-1 if there is none) and the kind of limit of the last refusal
    (``kind`` if ``later`` itself is allowed). No start is skipped that the
    counter would allow: a refusal names where the limit it passed is next met.
    """
    if later < 0:
        return -1, kind
    while True:
        over = profile.over(later, later + walltime, amounts, limits)
        if over is None:
            return later, kind
        if over[1] <= later:
            return -1, kind
        later, kind = over[1], over[0]


class Refusals:
    """Where the quotas of one rule and counter refused jobs during this round, to skip the walks again.

    A job refused from ``since`` up to ``until`` (where it was allowed) tells of
    any later job of the same counter asking at least as many resources for at
    least as long, from ``since`` on: it is refused there too, since counters
    only grow during a round and its window covers the first job's. A later
    job's walk may then start at ``until``. A few records per counter are kept,
    the ones no other record makes useless.
    """

    #: records kept per counter: a bound found from fewer is still a bound
    KEPT = 16

    def __init__(self) -> None:
        self.records: list[tuple[int, int, int, int]] = []  # count, walltime, since, until

    def bound(self, start: int, count: int, walltime: int) -> int:
        """The latest start before which the quotas are known to refuse this job (-1: nothing known)."""
        best = -1
        for c, w, since, until in self.records:
            if until > best and c <= count and w <= walltime and since <= start:
                best = until
        return best

    def record(self, since: int, count: int, walltime: int, until: int) -> None:
        records = self.records
        for c, w, s, u in records:
            if c <= count and w <= walltime and s <= since and u >= until:
                return  # that record already says as much
        records[:] = [r for r in records
                      if not (r[0] >= count and r[1] >= walltime and r[2] >= since and r[3] <= until)]
        records.append((count, walltime, since, until))
        if len(records) > self.KEPT:
            del records[0]


def _matches(rule: Key, queue: str, project: str, types: Iterable[str], user: str) -> bool:
    q, p, t, u = rule
    return (q in ("*", "/", queue) and p in ("*", "/", project) and u in ("*", "/", user)
            and (t == "*" or t in types))


def _counter(rule: Key, queue: str, project: str, user: str) -> Key:
    q, p, t, u = rule
    return (queue if q == "/" else q, project if p == "/" else p, t, user if u == "/" else u)


def applicable(rules: Mapping[Key, Limits], job_types: Sequence[str], queue: str, project: str,
               types: Iterable[str], user: str) -> Key | None:
    """The rule that applies to a job, walking OAR3's rule tree: a value, then ``/``, then ``*``."""
    def pick(options: Iterable[str], value: str) -> str | None:
        present = set(options)
        return next((v for v in (value, "/", "*") if v in present), None)

    queue_key = pick((r[0] for r in rules), queue)
    if queue_key is None:
        return None
    project_key = pick((r[1] for r in rules if r[0] == queue_key), project)
    if project_key is None:
        return None
    present_types = {r[2] for r in rules if r[:2] == (queue_key, project_key)}
    declared = [t for t in types if t in job_types and t != "*"]  # only the types the file names count
    type_key = next((t for t in [*declared, "*"] if t in present_types), None)
    if type_key is None:
        return None
    user_key = pick((r[3] for r in rules if r[:3] == (queue_key, project_key, type_key)), user)
    return None if user_key is None else (queue_key, project_key, type_key, user_key)


#: What the quotas know of a job or an allocation: queue, project, type names, user.
Kind = tuple[str, str, tuple[str, ...], str]
#: Why a job waits: the rule, the kind of limit (an index of ``KINDS``) and the limit.
Why = tuple[Key, int, int]


def kind_of(queue: str, project: str, types: Mapping[str, str], user: str) -> Kind:
    return queue, project, tuple(types), user


class Ledger:
    """One round's counters: what placed and running jobs hold, per counter key, over time.

    Only the counters of a rule that applies to some waiting job are kept (given the waiting jobs):
    a counter no job is checked against, such as the whole cluster's under a per-user rule, would
    otherwise be updated at every placement for nothing. The rule of each kind of job and the
    profiles an allocation counts in are found once per kind, not once per job.
    """

    def __init__(self, quotas: Quotas, waiting: Iterable[Job] | None = None) -> None:
        self.quotas = quotas
        self.profiles: dict[Key, Profile] = {}
        self.notes: dict[int, str] = {}
        #: the rule that applies, per rule set and kind of job (most jobs of a round share a few)
        self.rules_of: dict[tuple[int, Kind], Key | None] = {}
        #: the profiles an allocation of one kind counts in
        self._targets: dict[Kind, list[Profile]] = {}
        self.needed: set[Key] | None = None
        #: per rule and counter, the stretches of the Gantt where the quotas refused jobs (see :class:`Refusals`)
        self.refusals: dict[tuple[Key, Key], Refusals] = {}
        if waiting is not None:
            kinds = {kind_of(job.queue, job.project, job.types, job.user)
                     for job in waiting if self.counted(job.queue, job.types)}
            self.needed = {rule for rules in quotas.all_rules() for kind in kinds
                           if (rule := self.rule_of(rules, kind)) is not None}

    @staticmethod
    def counted(queue: str, types: Mapping[str, str]) -> bool:
        return "container" not in types and ("besteffort" not in types or queue == "besteffort")

    def rule_of(self, rules: dict[Key, Limits], kind: Kind) -> Key | None:
        memo = (id(rules), kind)
        if memo in self.rules_of:
            return self.rules_of[memo]
        queue, project, types, user = kind
        key = self.rules_of[memo] = applicable(rules, self.quotas.job_types, queue, project, types, user)
        return key

    def add(self, allocation: Allocation, project: str) -> None:
        """A running, reserved or placed job now holds its resources from its start to its stop."""
        if not self.counted(allocation.queue, allocation.types):
            return
        kind = kind_of(allocation.queue, project, allocation.types, allocation.user)
        targets = self._targets.get(kind)
        if targets is None:
            targets = self._targets[kind] = self._profiles_of(kind)
        if targets:
            count = len(allocation.resource_ids)
            amounts = (count, 1, count * allocation.walltime)
            for profile in targets:
                profile.add(allocation.start, allocation.stop, amounts)

    def _profiles_of(self, kind: Kind) -> list[Profile]:
        queue, project, types, user = kind
        needed = self.needed
        keys = {
            _counter(rule, queue, project, user)
            for rules in self.quotas.all_rules() for rule in rules
            if (needed is None or rule in needed) and _matches(rule, queue, project, types, user)
        }
        return [self.profiles.setdefault(key, Profile()) for key in sorted(keys)]

    def check(self, job: Job, start: int, walltime: int, count: int) -> tuple[int, str] | None:
        """Whether the job fits the quotas at ``start``: None, or (a later start to try, -1 if none; why)."""
        if not self.counted(job.queue, job.types):
            return None
        verdict = self.check_kind(kind_of(job.queue, job.project, job.types, job.user), start, walltime, count)
        return None if verdict is None else (verdict[0], _note(*verdict[1]))

    def check_kind(self, kind: Kind, start: int, walltime: int, count: int) -> tuple[int, Why] | None:
        """:meth:`check` for a job of ``kind`` that the quotas count; the rule passed, unworded."""
        amounts = (count, 1, count * walltime)
        if self.quotas.calendar is None:  # one rule set: the job's rule once, its counter's profile
            return self._check_one(kind, start, start + walltime, amounts)
        queue, project, _, user = kind
        t, stop = start, start + walltime
        while t < stop:
            rules, until = self.quotas.rules_at(t)
            end = stop if until is None else min(stop, until)
            key = self.rule_of(rules, kind)
            if key is not None:
                limits = rules[key]
                counter = _counter(key, queue, project, user)
                alone = next((k for k in range(3) if -1 < limits[k] < amounts[k]), None)
                if alone is not None:  # the job alone passes this period's limit: the next period may allow it
                    return (until if until is not None else -1), (key, alone, limits[alone])
                profile = self.profiles.get(counter)
                over = profile.over(t, end, amounts, limits) if profile is not None else None
                if over is not None:  # retry once that step is over, or when the rules change, whichever first
                    retry = over[1] if until is None or over[1] < 0 else min(over[1], until)
                    return retry, (key, over[0], limits[over[0]])
            t = end
        return None

    def chain(self, kind: Kind, start: int, walltime: int, count: int) -> tuple[int, Why | None]:
        """From ``start``, on to the next start each refusal names while the quotas alone say no.

        The start reached that the quotas allow (``start`` itself and no reason
        if they allow it there; -1 if there is none), and the last reason given.
        With one rule set the rule, its limits and its counter are looked up
        once for the whole chain.
        """
        if self.quotas.calendar is not None:
            return self._chain_checks(kind, start, walltime, count)
        rules = self.quotas.rule_sets[None]
        key = self.rule_of(rules, kind)
        if key is None:
            return start, None
        limits = rules[key]
        amounts = (count, 1, count * walltime)
        alone = next((k for k in range(3) if -1 < limits[k] < amounts[k]), None)
        if alone is not None:
            return -1, (key, alone, limits[alone])
        queue, project, _, user = kind
        counter = _counter(key, queue, project, user)
        profile = self.profiles.get(counter)
        if profile is None:
            return start, None
        refusals = self.refusals.get((key, counter))
        if refusals is None:
            refusals = self.refusals[(key, counter)] = Refusals()
        shortcut = refusals.bound(start, count, walltime)
        if shortcut > start:  # an earlier job asking no more was refused up to there: start the walk there
            later, _ = _walk(profile, shortcut, walltime, amounts, limits)
            named = profile.passed_before(later, amounts, limits) if later >= 0 else -1
            if named >= 0:  # one limit only is passed just before: every walk from ``start`` names it
                refusals.record(start, count, walltime, later)
                return later, (key, named, limits[named])
        over = profile.over(start, start + walltime, amounts, limits)
        if over is None:
            return start, None
        later, passed = _walk(profile, over[1], walltime, amounts, limits, over[0])
        if later >= 0:
            refusals.record(start, count, walltime, later)
        return later, (key, passed, limits[passed])

    def _chain_checks(self, kind: Kind, start: int, walltime: int, count: int) -> tuple[int, Why | None]:
        verdict = self.check_kind(kind, start, walltime, count)
        if verdict is None:
            return start, None
        later, why = verdict
        while later > start:
            again = self.check_kind(kind, later, walltime, count)
            if again is None:
                return later, why
            if again[0] <= later:
                return -1, why
            later, why = again
        return -1, why

    def _check_one(self, kind: Kind, start: int, stop: int, amounts: tuple[int, int, int]) -> tuple[int, Why] | None:
        rules = self.quotas.rule_sets[None]
        key = self.rule_of(rules, kind)
        if key is None:
            return None
        limits = rules[key]
        if -1 < limits[0] < amounts[0] or -1 < limits[1] < 1 or -1 < limits[2] < amounts[2]:
            alone = next(k for k in range(3) if -1 < limits[k] < amounts[k])
            return -1, (key, alone, limits[alone])
        queue, project, _, user = kind
        profile = self.profiles.get(_counter(key, queue, project, user))
        over = profile.over(start, stop, amounts, limits) if profile is not None else None
        return None if over is None else (over[1], (key, over[0], limits[over[0]]))


#: How many later starts a job held back by quotas is tried at, before it is left unplaced for this round.
MAX_TRIES = 64


def within_quotas(
    ledger: Ledger, job: Job, walltime: int, found: tuple[int, int] | None,
    search: Callable[[int], tuple[int, int] | None],
) -> tuple[tuple[int, int] | None, str | None]:
    """The first of the Gantt's starts for the job, from ``found`` on, that the quotas allow; and why it moved."""
    if found is None or not ledger.counted(job.queue, job.types):
        return found, None
    kind = kind_of(job.queue, job.project, job.types, job.user)
    why: Why | None = None
    fits: tuple[int, int] | None = None  # a start and a count the quotas were just seen to allow
    for _ in range(MAX_TRIES):
        if found is None:
            break
        count = found[1].bit_count()
        if (found[0], count) == fits:
            break  # the chart gave the very start the quotas allow: checking it again would say so again
        # move on while the quotas alone say no: a chart search costs more than a check
        later, reason = ledger.chain(kind, found[0], walltime, count)
        if reason is None:
            break
        why = reason
        if later > found[0]:
            fits = (later, count)
            found = search(later)
        else:
            found = None
    else:
        found = None
    if why is None:
        return found, None
    note = ledger.notes[job.id] = _note(*why)
    return found, note


def _note(rule: Key, kind: int, limit: int) -> str:
    shown = limit // 3600 if kind == 2 else limit
    return f"Quotas limitation reached: {KINDS[kind]} quotas failed, rule ({','.join(rule)}), limit {shown}"
