"""placeholder / allowed: resources a ``-t placeholder=NAME`` job holds are usable by ``-t allowed=NAME`` jobs.

As OAR3's slot sets do with their placeholder intervals: a placeholder job is
placed like any job, and its resources join the pool ``NAME`` of the Gantt's
slots during its time (the Gantt's per-slot shared table, under the key
``("placeholder", NAME)``, never a timesharing key). An allowed job is placed
with the pool counted as free, and what it takes leaves the pool, so two
allowed jobs never share a resource. Other jobs never see the pool.
"""

from __future__ import annotations

from collections.abc import Mapping

from .gantt import INFINITY, Gantt, TimeshareKey


def pool_of(types: Mapping[str, str], kind: str) -> TimeshareKey | None:
    """The pool a job's ``placeholder=NAME`` (``kind="placeholder"``) or ``allowed=NAME`` names."""
    name = types.get(kind)
    return ("placeholder", name) if name else None


def _window(gantt: Gantt, start: int, stop: int) -> range:
    first = gantt._split(max(start, gantt.origin))
    last = gantt._split(stop) if stop < INFINITY else len(gantt.starts)
    return range(first, last)


def lend(gantt: Gantt, start: int, stop: int, mask: int, key: TimeshareKey) -> None:
    """A placeholder's resources join pool ``key`` during ``[start, stop)`` (they are already taken)."""
    if stop <= max(start, gantt.origin) or not mask:
        return
    for k in _window(gantt, start, stop):
        table = gantt.shared[k]
        if table is None:
            table = gantt.shared[k] = {}
        table[key] = table.get(key, 0) | mask


def open_pool(gantt: Gantt, key: TimeshareKey) -> None:
    """Count pool ``key`` as free, for the placement of one allowed job."""
    for k, table in enumerate(gantt.shared):
        if table and key in table:
            gantt.frees[k] |= table[key]


def close_pool(gantt: Gantt, key: TimeshareKey, taken: tuple[int, int, int] | None) -> None:
    """Take ``taken`` = (start, stop, mask) out of pool ``key``, and hide what is left of the pool again."""
    if taken is not None:
        start, stop, mask = taken
        if stop > max(start, gantt.origin) and mask:
            for k in _window(gantt, start, stop):
                table = gantt.shared[k]
                if table and key in table:
                    table[key] &= ~mask
    for k, table in enumerate(gantt.shared):
        if table and key in table:
            gantt.frees[k] &= ~table[key]
