"""The Gantt chart: which resources are free, slot by slot, from now on.

Slots are kept as two parallel sorted lists, ``starts`` and ``frees``: slot
``k`` covers ``[starts[k], starts[k+1])`` (the last one runs forever) and
``frees[k]`` is the bitset of resources free during it. Occupying a window
splits the slots at its two ends and clears the window's bits; nothing already
placed ever moves, which is what makes backfilling *conservative*.

Timesharing jobs leave their resources in ``shared[k][key]`` as well, so a
later job with the same timesharing key can use them again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

INFINITY = 2**62

TimeshareKey = tuple[str, str]
Fitter = Callable[[int], int]


class Gantt:
    """Free resources over time, starting at ``origin``."""

    def __init__(self, origin: int, resources: int) -> None:
        self.origin = origin
        self.starts: list[int] = [origin]
        self.frees: list[int] = [resources]
        self.shared: list[dict[TimeshareKey, int] | None] = [None]

    def __len__(self) -> int:
        return len(self.starts)

    def _split(self, time: int) -> int:
        """Make ``time`` a slot boundary; return the index of the slot starting there."""
        starts = self.starts
        k = bisect_right(starts, time) - 1
        if starts[k] == time:
            return k
        starts.insert(k + 1, time)
        self.frees.insert(k + 1, self.frees[k])
        shared = self.shared[k]
        self.shared.insert(k + 1, dict(shared) if shared else None)
        return k + 1

    def occupy(self, start: int, stop: int, mask: int, share: TimeshareKey | None = None) -> None:
        """Take ``mask`` during ``[start, stop)`` (clipped to the chart's origin)."""
        start = max(start, self.origin)
        if stop <= start or not mask:
            return
        first = self._split(start)
        last = self._split(stop) if stop < INFINITY else len(self.starts)
        keep = ~mask
        frees, shared = self.frees, self.shared
        for k in range(first, last):
            frees[k] &= keep
            if share is not None:
                table = shared[k]
                if table is None:  # _split copies tables, so no two slots share one
                    table = shared[k] = {}
                table[share] = table.get(share, 0) | mask

    def _available(self, k: int, share: TimeshareKey | None) -> int:
        free = self.frees[k]
        if share is not None:
            table = self.shared[k]
            if table:
                free |= table.get(share, 0)
        return free

    def window(self, start: int, stop: int, share: TimeshareKey | None = None, within: int = -1) -> int:
        """Resources free during the whole of ``[start, stop)``."""
        starts = self.starts
        k = bisect_right(starts, max(start, self.origin)) - 1
        avail = within
        n = len(starts)
        while k < n and starts[k] < stop:
            avail &= self._available(k, share)
            k += 1
        return avail

    def earliest(
        self,
        not_before: int,
        duration: int,
        fit: Fitter,
        *,
        universe: int,
        min_count: int,
        share: TimeshareKey | None = None,
    ) -> tuple[int, int] | None:
        """First ``(start, resources)`` from ``not_before`` on where ``fit`` succeeds for ``duration``.

        Candidate starts are ``not_before`` and every later slot boundary: the
        free set only changes there. ``None`` if nothing fits up to the last
        slot, which runs forever.
        """
        starts = self.starts
        n = len(starts)
        # Timesharing jobs see their key's shared resources as free: build that view once.
        frees = self.frees if share is None else [self._available(k, share) for k in range(n)]
        k = bisect_right(starts, max(not_before, self.origin)) - 1
        while k < n:
            start = starts[k] if starts[k] > not_before else not_before
            stop = start + duration
            avail = frees[k] & universe
            if avail.bit_count() < min_count:
                k += 1
                continue
            j = k + 1
            while j < n and starts[j] < stop:
                avail &= frees[j]
                j += 1
            j -= 1  # the window's last slot
            if avail.bit_count() >= min_count:
                got = fit(avail)
                if got:
                    return start, got
                k += 1
                continue
            # Too few resources are free through slots k..j. Walk back from j to the first
            # slot m from which slots m..j still leave enough: every window starting before m
            # reaches j (later windows end later) and lacks resources, so resume at m (or after j).
            back = frees[j] & universe
            if back.bit_count() < min_count:
                k = j + 1
                continue
            m = j
            while m - 1 > k:
                narrower = back & frees[m - 1]
                if narrower.bit_count() < min_count:
                    break
                back = narrower
                m -= 1
            k = m if m > k else k + 1
        return None  # only possible when resources are withdrawn for good (available_upto)

    def release(self, start: int, stop: int, mask: int) -> None:
        """Give ``mask`` back during ``[start, stop)``: undo an :meth:`occupy` of resources that were free."""
        start = max(start, self.origin)
        if stop <= start or not mask:
            return
        first = self._split(start)
        last = self._split(stop) if stop < INFINITY else len(self.starts)
        frees = self.frees
        for k in range(first, last):
            frees[k] |= mask
