"""The job types that change where a job may go: containers, placeholders and tokens, for one round.

:func:`oar_celery.scheduler.schedule` hands every running job it puts on the
chart and every job it places to :class:`SpecialTypes`, which sends inner jobs
to their container's chart (:mod:`.containers`), lends placeholders' resources
to allowed jobs (:mod:`.placeholders`) and counts tokens (:mod:`.tokens`).
Jobs of none of these types go straight to the round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from . import placeholders
from .containers import ContainerCharts, Round, container_of, is_container
from .tokens import TokenChart, token_requests
from .types import Allocation, Job

#: tries of later starts for a token job before it is said to wait for its tokens
TOKEN_TRIES = 1000
NO_TOKENS = "its tokens are not available"


class SpecialTypes:
    """The round's containers, placeholder pools and token counts."""

    def __init__(
        self,
        now: int,
        round_: Round,
        new_round: Callable[[], Round],
        mask_of: Callable[[list[int]], int],
        security_time: int,
        tokens: Mapping[str, int],
    ) -> None:
        self.round = round_
        self.security_time = security_time
        self.containers = ContainerCharts(now, new_round, mask_of)
        self.tokens = TokenChart(tokens)
        self.mask_of = mask_of

    @staticmethod
    def ordered(placed: Sequence[Allocation]) -> list[Allocation]:
        """Containers and placeholders first, then the rest, then allowed and inner jobs that use them."""
        def rank(allocation: Allocation) -> int:
            types = allocation.types
            if is_container(types) or "placeholder" in types:
                return 0
            return 2 if "allowed" in types or container_of(types) is not None else 1
        return sorted(placed, key=rank)

    @staticmethod
    def split_waiting(waiting: Sequence[Job]) -> tuple[list[Job], list[Job]]:
        """The waiting jobs of the cluster's chart, and the inner jobs, placed once their containers are."""
        inner = [job for job in waiting if container_of(job.types) is not None]
        ids = {job.id for job in inner}
        return [job for job in waiting if job.id not in ids], inner

    def put(self, allocation: Allocation) -> None:
        """A running job or accepted reservation onto the right chart."""
        if not allocation.types:  # most jobs: no type, nothing more to do
            self.round.put(allocation)
            return
        if container_of(allocation.types) is not None and self.containers.put(allocation):
            self._taken(allocation, charted=False)
            return
        self.round.put(allocation)
        self._taken(allocation)

    def place(self, job: Job, not_before: int) -> Allocation | str:
        """Place a waiting job on the right chart, with the pool it may use and the tokens it needs."""
        if not job.types:
            return self.round.place(job, not_before)
        if container_of(job.types) is not None:
            outcome = self._with_tokens(job, not_before, self.containers.place)
            if not isinstance(outcome, str):
                self._taken(outcome, charted=False)
            return outcome
        pool = placeholders.pool_of(job.types, "allowed")
        if pool is None:
            outcome = self._with_tokens(job, not_before, self.round.place)
        else:
            # The round's bounds on where a request shape fits hold for the chart without the pool:
            # an allowed job sees more, so it neither uses them nor records its own.
            bounds, self.round.frontier = self.round.frontier, {}
            placeholders.open_pool(self.round.gantt, pool)
            try:
                outcome = self._with_tokens(job, not_before, self.round.place)
            finally:
                self.round.frontier = bounds
            taken = None if isinstance(outcome, str) else self._window(outcome)
            placeholders.close_pool(self.round.gantt, pool, taken)
        if not isinstance(outcome, str):
            self._taken(outcome, allowed_done=True)
        return outcome

    def place_inner(self, jobs: Sequence[Job], placements: list[Allocation], unplaceable: dict[int, str]) -> None:
        """Inner jobs, in priority order, once every container of the round is on the chart."""
        for job in jobs:
            not_before = max([self.round.stops.get(dep, 0) for dep in job.dependencies], default=0)
            outcome = self.place(job, max(not_before, self.containers.now))
            if isinstance(outcome, str):
                unplaceable[job.id] = outcome
            else:
                placements.append(outcome)

    # -- after a job is on a chart --
    def _window(self, allocation: Allocation) -> tuple[int, int, int]:
        return allocation.start, allocation.stop + self.security_time, self.mask_of(allocation.resource_ids)

    def _taken(self, allocation: Allocation, *, charted: bool = True, allowed_done: bool = False) -> None:
        types = allocation.types
        if is_container(types):
            self.containers.open(allocation)
        if charted:
            held = placeholders.pool_of(types, "placeholder")
            if held is not None:
                start, stop, mask = self._window(allocation)
                placeholders.lend(self.round.gantt, start, stop, mask, held)
            pool = placeholders.pool_of(types, "allowed")
            if pool is not None and not allowed_done:
                placeholders.close_pool(self.round.gantt, pool, self._window(allocation))
        wanted = token_requests(types)
        if wanted:
            self.tokens.take(wanted, allocation.start, allocation.stop)

    def _with_tokens(
        self, job: Job, not_before: int, place: Callable[[Job, int], Allocation | str]
    ) -> Allocation | str:
        """Place ``job``; if its tokens are not free for its whole walltime, undo and try the next change of them."""
        wanted = token_requests(job.types)
        if not wanted:
            return place(job, not_before)
        if any(count > self.tokens.totals.get(name, 0) for name, count in wanted.items()):
            return NO_TOKENS
        start = not_before
        for _ in range(TOKEN_TRIES):
            outcome = place(job, start)
            if isinstance(outcome, str) or self.tokens.fits(wanted, outcome.start, outcome.stop):
                return outcome
            self._undo(job, outcome)
            if job.reservation_start is not None:
                return NO_TOKENS  # a reservation keeps its time
            later = self.tokens.next_change(wanted, outcome.start)
            if later is None:
                return NO_TOKENS
            start = later
        return NO_TOKENS

    def _undo(self, job: Job, outcome: Allocation) -> None:
        chart = self.containers.charts.get(container_of(job.types) or "", self.round)
        start, stop, mask = self._window(outcome)
        chart.gantt.release(start, stop, mask)
        chart.stops.pop(job.id, None)
