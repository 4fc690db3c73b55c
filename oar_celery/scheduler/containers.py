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

from .gantt import INFINITY, Gantt
from .types import Allocation, Job

NOT_PLACED = "its container is not placed yet"


class Round(Protocol):
    """What a container needs of a scheduling round (``scheduler._Round``)."""

    gantt: Gantt
    stops: dict[int, int]
    frontier: dict[Any, Any]

    def put(self, allocation: Allocation) -> None: ...

    def place(self, job: Job, not_before: int) -> Allocation | str: ...


def container_of(types: dict[str, str]) -> int | None:
    """The container id of an ``inner=ID`` job."""
    value = types.get("inner", "")
    return int(value) if value.isdigit() else None


def is_container(types: dict[str, str]) -> bool:
    return "container" in types


class ContainerCharts:
    """One chart per container on the cluster's chart, made by ``new_round`` on the container's resources."""

    def __init__(self, now: int, new_round: Callable[[], Round], mask_of: Callable[[list[int]], int]) -> None:
        self.now = now
        self.new_round = new_round
        self.mask_of = mask_of
        self.charts: dict[int, Round] = {}
        #: the window of each container: (start, stop, resources)
        self.windows: dict[int, tuple[int, int, int]] = {}

    def open(self, container: Allocation) -> None:
        """The container is on the chart: its inner jobs may be placed from now on."""
        mask = self.mask_of(container.resource_ids)
        chart = self.new_round()
        chart.gantt = Gantt(self.now, mask)
        chart.gantt.occupy(self.now, container.start, mask)
        chart.gantt.occupy(container.stop, INFINITY, mask)
        self.charts[container.job_id] = chart
        self.windows[container.job_id] = (container.start, container.stop, mask)

    def put(self, allocation: Allocation) -> bool:
        """A running inner job goes on its container's chart; False if it has no open container."""
        chart = self.charts.get(container_of(allocation.types) or -1)
        if chart is None:
            return False
        chart.put(allocation)
        return True

    def place(self, job: Job, not_before: int) -> Allocation | str:
        container = container_of(job.types)
        chart = self.charts.get(container if container is not None else -1)
        if chart is None:
            return NOT_PLACED
        outcome = chart.place(job, not_before)
        if isinstance(outcome, str):
            return f"it does not fit in its container {container} ({outcome})"
        return outcome
