"""OAR's meta-scheduler as a pure function: a Gantt chart with conservative backfilling.

:func:`schedule` takes plain objects (see :mod:`.types`) and returns where and
when every waiting job would run; the head's scheduling task loads them from
the database and writes the answer back. Nothing here imports Celery or a
database, so the whole policy is testable and benchmarkable on its own.

A round, as OAR does it:

1. running jobs and accepted reservations go on the Gantt first;
2. waiting reservations are placed exactly at their start, or refused (their
   dependencies are not considered: a reservation keeps its time);
3. waiting jobs follow in descending queue priority, then karma (fair-share,
   0 when off), then FIFO, each at the
   earliest time its request fits for its whole walltime (+ security time),
   never moving anything already placed; of several moldable alternatives the
   one finishing first wins;
4. besteffort jobs come last: normal jobs ignore them, and running besteffort
   jobs standing in the way of a job starting now are listed to be killed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from functools import partial

from .errors import RequestError
from .gantt import INFINITY, Gantt, TimeshareKey
from .placement import NOT_ENOUGH, MoldableRequest, ResourceIndex
from .quotas import Ledger, Quotas, within_quotas
from .special import SpecialTypes
from .types import Allocation, Job, Moldable, Resource, ResourceGroup, SchedulingResult

#: OAR's ``available_upto`` for a resource that is never withdrawn.
NO_LIMIT = 2147483647
WITHDRAWN = "the resources it needs are withdrawn (available_upto) before it could end"
DEFAULT_LABELS = ("resource_id", "network_address", "cpu", "core", "switch", "host")


def is_besteffort(types: Mapping[str, str], queue: str = "") -> bool:
    return "besteffort" in types or queue == "besteffort"


def timeshare_key(types: Mapping[str, str], user: str, name: str) -> TimeshareKey | None:
    """``timesharing=user,*`` shares with the same user's jobs, ``*,*`` with anyone's; ``name`` likewise.

    As OAR3 (``admission_rules.d/15_check_types.py``), the two words come in
    either order: ``name,user`` is ``user,name``, ``*,user`` is ``user,*``.
    """
    if "timesharing" not in types:
        return None
    parts = {part.strip() for part in (types.get("timesharing") or "*,*").split(",")}
    return ("user:" + user if "user" in parts else "*", "name:" + name if "name" in parts else "*")


class _Round:
    """The state of one scheduling round."""

    def __init__(self, now: int, index: ResourceIndex, security_time: int) -> None:
        self.now = now
        self.index = index
        self.security_time = security_time
        self.gantt = Gantt(now, index.usable)
        self.result = SchedulingResult()
        self.stops: dict[int, int] = {}
        #: compiled requests by moldable object (ids: hashing a moldable walks its groups every time)
        self.requests: dict[tuple[int, str | None], tuple[Moldable, MoldableRequest | str]] = {}
        #: one compiled request per shape (groups and filter), whatever the walltime
        self.shapes: dict[tuple[tuple[ResourceGroup, ...], str | None], MoldableRequest | str] = {}
        #: per compiled request shape, starts before which no window fits (see :meth:`_search`)
        self.frontier: dict[MoldableRequest, Frontier] = {}
        self.quotas: Ledger | None = None

    def put(self, allocation: Allocation) -> None:
        """Put a running job or accepted reservation on the chart."""
        mask = self.index.mask_of(allocation.resource_ids)
        stop = allocation.stop + self.security_time
        # A job past its walltime still holds its resources until it is killed.
        stop = max(stop, self.now + max(self.security_time, 1))
        key = timeshare_key(allocation.types, allocation.user, allocation.name)
        self.gantt.occupy(allocation.start, stop, mask, key)
        self.stops[allocation.job_id] = allocation.stop
        if self.quotas is not None:
            self.quotas.add(allocation, allocation.project)

    def block_expiring(self, resources: Sequence[Resource]) -> None:
        """Take every resource from its ``available_upto`` on (desktop computing, energy saving).

        A job is only placed on a resource it ends on before the resource is
        withdrawn; ``0`` and OAR's default 2147483647 mean "no limit".
        """
        by_limit: dict[int, list[int]] = {}
        for resource in resources:
            if 0 < resource.available_upto < NO_LIMIT:
                by_limit.setdefault(resource.available_upto, []).append(resource.id)
        for limit, ids in by_limit.items():
            self.gantt.occupy(limit, INFINITY, self.index.mask_of(ids))

    def request(self, moldable: Moldable, job_filter: str | None) -> MoldableRequest | str:
        """Compiled request, or the reason it can never be placed: one per shape of request.

        The moldable is kept beside its entry, so that its id is not reused for another.
        """
        key = (id(moldable), job_filter)
        known = self.requests.get(key)
        if known is not None:
            return known[1]
        shape = (moldable.groups, job_filter)
        cached = self.shapes.get(shape)
        if cached is None:
            try:
                compiled = MoldableRequest(self.index, moldable, job_filter)
                cached = compiled if compiled.satisfiable() else NOT_ENOUGH
            except RequestError as error:
                cached = str(error)
            self.shapes[shape] = cached
        self.requests[key] = (moldable, cached)
        return cached

    def place(self, job: Job, not_before: int) -> Allocation | str:
        """Place ``job`` at its earliest finish, or say why it cannot be placed."""
        share = timeshare_key(job.types, job.user, job.name)
        best: tuple[int, int, Moldable, int] | None = None  # finish, start, moldable, resources
        reason = NOT_ENOUGH
        for moldable in job.moldables:
            if best is not None and not_before + moldable.walltime >= best[0]:
                continue  # cannot finish earlier than what we have
            compiled = self.request(moldable, job.properties_filter)
            if isinstance(compiled, str):
                reason = compiled
                continue
            if job.reservation_start is not None:
                found = self._at(job.reservation_start, moldable, compiled, share)
                if found is None:
                    reason = "the reservation's time window is not available"
                    continue
                start, mask = job.reservation_start, found
            else:
                found_at = self._search(not_before, moldable, compiled, share)
                held = None
                if found_at is not None and self.quotas is not None:
                    search = partial(self._search, moldable=moldable, compiled=compiled, share=share)
                    found_at, held = within_quotas(self.quotas, job, moldable.walltime, found_at, search)
                if found_at is None:  # only resources withdrawn for good (available_upto) leave no room, or quotas
                    reason = held or WITHDRAWN
                    continue
                start, mask = found_at
            finish = start + moldable.walltime
            if best is None or finish < best[0]:
                best = (finish, start, moldable, mask)
        if best is None:
            return reason
        _, start, moldable, mask = best
        self.gantt.occupy(max(start, self.now), start + moldable.walltime + self.security_time, mask, share)
        self.stops[job.id] = start + moldable.walltime
        allocation = Allocation(
            job_id=job.id,
            moldable_id=moldable.moldable_id,
            start=start,
            walltime=moldable.walltime,
            resource_ids=self.index.ids_of(mask),
            types=dict(job.types),
            user=job.user,
            queue=job.queue,
            name=job.name,
            project=job.project,
        )
        if self.quotas is not None:
            self.quotas.add(allocation, job.project)
        return allocation

    def _at(self, start: int, moldable: Moldable, compiled: MoldableRequest, share: TimeshareKey | None) -> int | None:
        stop = start + moldable.walltime + self.security_time
        if stop <= self.now:
            return None
        # a reservation whose start is past but not its end starts now, for what remains of it (OAR3)
        avail = self.gantt.window(max(start, self.now), stop, share, within=compiled.universe)
        return compiled.fit(avail) or None

    def _search(
        self,
        not_before: int,
        moldable: Moldable,
        compiled: MoldableRequest,
        share: TimeshareKey | None,
    ) -> tuple[int, int] | None:
        # The chart only fills up during a round, and a longer window is harder to find than
        # a shorter one: once a search from ``now`` found that a shape fits no earlier than t
        # for walltime w, no request of that shape with walltime >= w fits before t. Without
        # this every job would scan the chart from ``now``, and a round would be quadratic.
        # Timesharing jobs are left out: their own placements make room for each other.
        frontier = self.frontier.get(compiled)
        if frontier is None:
            frontier = self.frontier[compiled] = Frontier()
        searched_from_now = not_before == self.now
        if share is None:
            not_before = max(not_before, frontier.bound(moldable.walltime))
        found = self.gantt.earliest(
            not_before,
            moldable.walltime + self.security_time,
            compiled.fit,
            universe=compiled.universe,
            min_count=compiled.min_count,
            share=share,
        )
        if share is None and searched_from_now:
            frontier.record(moldable.walltime, INFINITY if found is None else found[0])
        return found


class Frontier:
    """Lower bounds on the start of one request shape, by walltime: a staircase.

    ``walltimes`` ascend and so do ``starts``; the bound for walltime ``w`` is the
    start recorded for the longest walltime not above ``w``.
    """

    def __init__(self) -> None:
        self.walltimes: list[int] = []
        self.starts: list[int] = []

    def bound(self, walltime: int) -> int:
        k = bisect_right(self.walltimes, walltime) - 1
        return self.starts[k] if k >= 0 else 0

    def record(self, walltime: int, start: int) -> None:
        if self.bound(walltime) >= start:
            return  # a shorter walltime already gives as much
        k = bisect_left(self.walltimes, walltime)
        end = k
        while end < len(self.walltimes) and self.starts[end] <= start:
            end += 1  # longer walltimes with a weaker bound are now covered by this one
        self.walltimes[k:end] = [walltime]
        self.starts[k:end] = [start]


def _priority_order(jobs: Sequence[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (-job.queue_priority, job.karma, job.submission_time, job.id))


def schedule(
    now: int,
    resources: Sequence[Resource],
    placed: Sequence[Allocation],
    waiting: Sequence[Job],
    *,
    security_time: int = 60,
    hierarchy_labels: Sequence[str] = DEFAULT_LABELS,
    resource_order: Sequence[str] = ("resource_id",),
    columns: Mapping[str, str] | None = None,
    tokens: Mapping[str, int] | None = None,
    quotas: Quotas | None = None,
) -> SchedulingResult:
    """One scheduling round: predicted start and resources of every waiting job.

    ``placed`` are running jobs and accepted reservations; ``waiting`` the jobs
    to place. Only ``Alive`` resources are used. See the module docstring for
    the policy; containers, placeholders and ``tokens`` (totals by name) are :mod:`.special`'s.
    """
    del hierarchy_labels  # levels were validated when requests were parsed
    index = ResourceIndex(resources, resource_order=resource_order, columns=columns)
    round_ = _Round(now, index, security_time)
    round_.quotas = Ledger(quotas, waiting) if quotas is not None else None
    round_.block_expiring(resources)
    result = round_.result
    special = SpecialTypes(now, round_, lambda: _Round(now, index, security_time), index.mask_of, security_time,
                           tokens or {})
    waiting, inner = special.split_waiting(waiting)
    besteffort_running = [a for a in placed if is_besteffort(a.types, a.queue)]
    for allocation in special.ordered(placed):
        if not is_besteffort(allocation.types, allocation.queue):
            special.put(allocation)

    reservations = sorted(
        (j for j in waiting if j.reservation_start is not None),
        key=lambda j: (j.reservation_start, j.submission_time, j.id),
    )
    others = [j for j in waiting if j.reservation_start is None]
    normal = _priority_order([j for j in others if not is_besteffort(j.types, j.queue)])
    besteffort = _priority_order([j for j in others if is_besteffort(j.types, j.queue)])

    waiting_ids = {job.id for job in waiting}
    done: set[int] = set()
    blocked: dict[int, list[Job]] = {}

    def run(job: Job) -> None:
        """Place ``job`` and then every job that was only waiting for it."""
        stack = [job]
        while stack:
            current = stack.pop()
            not_before = now
            pending = None
            for dep in current.dependencies if current.reservation_start is None else ():
                if dep in waiting_ids and dep not in done:
                    pending = dep
                    break
                if dep in round_.stops:
                    not_before = max(not_before, round_.stops[dep])
                elif dep in result.unplaceable:
                    pending = -1
                    break
            if pending == -1:
                result.unplaceable[current.id] = "a job it depends on cannot be placed"
                done.add(current.id)
            elif pending is not None:
                blocked.setdefault(pending, []).append(current)
                continue
            else:
                outcome = special.place(current, not_before)
                if isinstance(outcome, str):
                    result.unplaceable[current.id] = outcome
                else:
                    result.placements.append(outcome)
                done.add(current.id)
            stack.extend(reversed(blocked.pop(current.id, [])))

    for job in reservations:
        run(job)
    for job in normal:
        run(job)
    special.place_inner(inner, result.placements, result.unplaceable)

    # Running besteffort jobs in the way of a job that starts now must go.
    starting_now = 0
    for allocation in result.placements:
        if allocation.start <= now:
            starting_now |= index.mask_of(allocation.resource_ids)
    for allocation in besteffort_running:
        if index.mask_of(allocation.resource_ids) & starting_now:
            result.besteffort_to_kill.append(allocation.job_id)
        round_.put(allocation)
    for job in besteffort:
        run(job)

    for jobs in blocked.values():
        for job in jobs:
            result.unplaceable.setdefault(job.id, "its dependencies form a cycle")
    if round_.quotas is not None:
        result.notes = {k: v for k, v in round_.quotas.notes.items() if k not in result.unplaceable}
    return result
