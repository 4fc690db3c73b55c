"""Containers: a ``-t container`` job's resources and time are a Gantt of their own for its inner jobs.

As OAR3's kao does with a slot set per container: once a container is on the
chart (running, an accepted reservation, or placed in this round), a second
:class:`~.gantt.Gantt` is opened with only the container's resources, free from
the container's start to its end and taken everywhere else. A ``-t inner=ID``
job is placed on that chart alone, with the same policy as any job, so it can
never leave its container's resources or time; running inner jobs are put
there too, not on the cluster's chart, where the container already holds
their resources. An inner job whose container is not on the chart waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .gantt import Gantt
from .types import Allocation, Job

NOT_PLACED = "its container is not placed yet"


class Round(Protocol):
    """What a container needs of a scheduling round (``scheduler._Round``)."""

    gantt: Gantt
    stops: dict[int, int]
    frontier: dict[Any, Any]

    def put(self, allocation: Allocation) -> None: ...

    def place(self, job: Job, not_before: int) -> Allocation | str: ...


def container_of(types: dict[str, str]) -> str | None:
    """The container an ``inner=ID`` (or ``inner=NAME``) job goes in."""
    return types.get("inner") or None


def is_container(types: dict[str, str]) -> bool:
    return "container" in types


def container_name(allocation: Allocation) -> str:
    """A container's name: ``container=NAME``'s, else its job id (OAR3's slot set names)."""
    return allocation.types.get("container") or str(allocation.job_id)


class ContainerCharts:
    """One chart per container on the cluster's chart, made by ``new_round`` on the container's resources."""

    def __init__(self, now: int, new_round: Callable[[], Round], mask_of: Callable[[list[int]], int]) -> None:
        self.now = now
        self.new_round = new_round
        self.mask_of = mask_of
        self.charts: dict[str, Round] = {}

    def open(self, container: Allocation) -> None:
        """The container is on the chart: its inner jobs may be placed from now on.

        Containers of one name (``container=NAME``) add their resources and times to one chart.
        """
        name = container_name(container)
        chart = self.charts.get(name)
        if chart is None:
            chart = self.charts[name] = self.new_round()
            chart.gantt = Gantt(self.now, 0)  # nothing is free but what containers bring
        chart.gantt.release(container.start, container.stop, self.mask_of(container.resource_ids))

    def put(self, allocation: Allocation) -> bool:
        """A running inner job goes on its container's chart; False if it has no open container."""
        chart = self.charts.get(container_of(allocation.types) or "")
        if chart is None:
            return False
        chart.put(allocation)
        return True

    def place(self, job: Job, not_before: int) -> Allocation | str:
        container = container_of(job.types)
        chart = self.charts.get(container or "")
        if chart is None:
            return NOT_PLACED
        outcome = chart.place(job, not_before)
        if isinstance(outcome, str):
            return f"it does not fit in its container {container} ({outcome})"
        return outcome
