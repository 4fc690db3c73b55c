"""Tokens: cluster-wide counters that ``-t token:NAME=N`` jobs consume while they run.

OAR's admins declare software licences and the like as tokens; a job asking
for ``token:matlab=2`` starts only when two of the cluster's ``matlab``
tokens are free for its whole walltime. Tokens are counted over time as the
Gantt counts resources: a :class:`TokenChart` holds, per token, the steps of
its use, and a job is placed at the first start where both its resources and
its tokens are free (the algorithm retries later starts).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping

PREFIX = "token:"


def parse_tokens(text: str) -> dict[str, int]:
    """``NAME=TOTAL,...`` (the ``OAR_TOKENS`` setting) → totals by name; a bad item raises ValueError."""
    totals: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, _, total = item.partition("=")
        if not name.strip() or not total.strip().isdigit():
            raise ValueError(f"bad token {item.strip()!r} (expected NAME=TOTAL)")
        totals[name.strip()] = int(total)
    return totals


def token_requests(types: Mapping[str, str]) -> dict[str, int]:
    """``{"token:matlab": "2"}`` (a job's types) → ``{"matlab": 2}``."""
    return {
        name[len(PREFIX):]: int(value)
        for name, value in types.items()
        if name.startswith(PREFIX) and value.isdigit()
    }


class TokenChart:
    """The use of each token over time: per token, sorted step times and the use from each step on."""

    def __init__(self, totals: Mapping[str, int]) -> None:
        self.totals = dict(totals)
        self.times: dict[str, list[int]] = {name: [0] for name in totals}
        self.used: dict[str, list[int]] = {name: [0] for name in totals}

    def _split(self, name: str, time: int) -> int:
        times, used = self.times[name], self.used[name]
        k = bisect_right(times, time) - 1
        if times[k] == time:
            return k
        times.insert(k + 1, time)
        used.insert(k + 1, used[k])
        return k + 1

    def take(self, wanted: Mapping[str, int], start: int, stop: int) -> None:
        """Use ``wanted`` tokens during ``[start, stop)``."""
        for name, count in wanted.items():
            if name not in self.totals or stop <= start:
                continue
            first, last = self._split(name, start), self._split(name, stop)
            used = self.used[name]
            for k in range(first, last):
                used[k] += count

    def fits(self, wanted: Mapping[str, int], start: int, stop: int) -> bool:
        """Whether ``wanted`` tokens are free during the whole of ``[start, stop)``."""
        for name, count in wanted.items():
            total = self.totals.get(name, 0)
            times, used = self.times.get(name, [0]), self.used.get(name, [0])
            k = bisect_right(times, start) - 1
            while k < len(times) and times[k] < stop:
                if used[k] + count > total:
                    return False
                k += 1
        return True

    def next_change(self, wanted: Mapping[str, int], after: int) -> int | None:
        """The first time after ``after`` when the use of a wanted token changes (a start worth retrying)."""
        found = [
            times[k]
            for name in wanted
            for times in [self.times.get(name, [0])]
            for k in [bisect_right(times, after)]
            if k < len(times)
        ]
        return min(found) if found else None
