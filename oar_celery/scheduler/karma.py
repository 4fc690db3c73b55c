"""OAR's karma: fair-share ordering of the waiting jobs of one queue priority, from past usage.

As OAR3's ``kao/karma.py``: over the last ``SCHEDULER_FAIRSHARING_WINDOW_SIZE``
seconds of the accounting of the queues of a priority, a job's karma is

    coef_project  * (project used / all used  - project target / 100)
  + coef_user     * (user used    / all used  - user target    / 100)
  + coef_user_ask * (user asked   / all asked - user target    / 100)

and jobs with the lower karma go first: whoever has used less than their
target share comes before whoever has used more. Targets are OAR's Perl-hash
text, ``{alice => 70, bob => 30}``; an unnamed user or project has a target
of 0. Pure: the head loads the sums from ``accounting`` and sets
``Job.karma``; the scheduler sorts on it within a queue priority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .types import Job

_PAIR = re.compile(r"^\s*['\"]?([^'\"=\s]+)['\"]?\s*(?:=>|:)\s*([-+0-9.eE]+)\s*$")


def parse_targets(text: str) -> dict[str, float]:
    """``{alice => 70, bob => 30}`` (OAR's Perl hash; ``'alice': 70`` also) → ``{"alice": 70.0, "bob": 30.0}``."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    targets: dict[str, float] = {}
    for pair in body.split(","):
        if not pair.strip():
            continue
        match = _PAIR.match(pair)
        if not match:
            raise ValueError(f"bad fair-share target {pair.strip()!r}: expected NAME => PERCENT")
        targets[match.group(1)] = float(match.group(2))
    return targets


@dataclass(frozen=True)
class KarmaPolicy:
    """OAR3's SCHEDULER_FAIRSHARING_* settings, parsed."""

    window: int
    project_targets: Mapping[str, float] = field(default_factory=dict)
    user_targets: Mapping[str, float] = field(default_factory=dict)
    coef_project: float = 0.0
    coef_user: float = 1.0
    coef_user_ask: float = 1.0


@dataclass
class Usage:
    """Accounted core-seconds of one group of queues inside the window."""

    asked: float = 0.0
    used: float = 0.0
    used_by_project: dict[str, float] = field(default_factory=dict)
    used_by_user: dict[str, float] = field(default_factory=dict)
    asked_by_user: dict[str, float] = field(default_factory=dict)

    def add(self, user: str, project: str, kind: str, seconds: float) -> None:
        if kind == "ASKED":
            self.asked += seconds
            self.asked_by_user[user] = self.asked_by_user.get(user, 0.0) + seconds
        else:
            self.used += seconds
            self.used_by_user[user] = self.used_by_user.get(user, 0.0) + seconds
            self.used_by_project[project] = self.used_by_project.get(project, 0.0) + seconds


def karma(policy: KarmaPolicy, usage: Usage, user: str, project: str) -> float:
    """One job's karma (OAR's formula; totals of 0 count as 1, as OAR's)."""
    used = usage.used or 1.0
    asked = usage.asked or 1.0
    user_target = policy.user_targets.get(user, 0.0) / 100.0
    project_target = policy.project_targets.get(project, 0.0) / 100.0
    return (
        policy.coef_project * (usage.used_by_project.get(project, 0.0) / used - project_target)
        + policy.coef_user * (usage.used_by_user.get(user, 0.0) / used - user_target)
        + policy.coef_user_ask * (usage.asked_by_user.get(user, 0.0) / asked - user_target)
    )


def set_karma(policy: KarmaPolicy, usage_by_priority: Mapping[int, Usage], jobs: Iterable[Job]) -> None:
    """Set ``karma`` on each job from the usage of its queue priority (computed once per user and project)."""
    memo: dict[tuple[int, str, str], float] = {}
    empty = Usage()
    for job in jobs:
        key = (job.queue_priority, job.user, job.project)
        value = memo.get(key)
        if value is None:
            value = memo[key] = karma(policy, usage_by_priority.get(job.queue_priority, empty), job.user, job.project)
        job.karma = value
