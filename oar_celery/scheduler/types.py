"""The data the scheduler works on.

The scheduling package imports neither Celery nor the database: the head's
scheduling task loads these plain objects from the database, calls
:func:`oar_celery.scheduler.schedule`, and writes the placements back.
Times are whole seconds since the epoch; walltimes are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Count = int | Literal["ALL", "BEST"]


@dataclass(frozen=True)
class Level:
    """One step of a hierarchy: ``nodes=2`` is ``Level("network_address", 2)``."""

    name: str
    count: Count


@dataclass(frozen=True)
class ResourceGroup:
    """One ``+``-separated group of a request, with its ``{...}`` filter text."""

    levels: tuple[Level, ...]
    property_filter: str | None = None


@dataclass(frozen=True)
class Moldable:
    """One ``-l`` alternative: groups that must all be satisfied at once."""

    groups: tuple[ResourceGroup, ...]
    walltime: int
    #: names a database row, not the request's shape: two moldables that differ only
    #: by id are equal, so the scheduler compiles and searches each shape once.
    moldable_id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Resource:
    """A schedulable resource (usually one core) and its property columns."""

    id: int
    network_address: str
    state: str = "Alive"
    properties: dict[str, object] = field(default_factory=dict)
    available_upto: int = 0


@dataclass
class Job:
    """A job to place: its alternatives, its queue and what it waits for."""

    id: int
    moldables: list[Moldable]
    queue: str = "default"
    queue_priority: int = 0
    submission_time: int = 0
    user: str = ""
    properties_filter: str | None = None
    types: dict[str, str] = field(default_factory=dict)
    dependencies: list[int] = field(default_factory=list)
    reservation_start: int | None = None
    name: str = ""
    project: str = ""
    #: OAR's fair-share karma (:mod:`.karma`): lower goes first within a queue priority; 0 when off.
    karma: float = 0.0


@dataclass
class Allocation:
    """A job placed on the Gantt: when it starts and on which resources."""

    job_id: int
    moldable_id: int
    start: int
    walltime: int
    resource_ids: list[int]
    types: dict[str, str] = field(default_factory=dict)
    user: str = ""
    queue: str = ""
    name: str = ""
    project: str = ""

    @property
    def stop(self) -> int:
        return self.start + self.walltime


@dataclass
class SchedulingResult:
    """What one scheduling round decided.

    ``placements`` holds one :class:`Allocation` per placeable waiting job (its
    predicted start; ``start == now`` means launch it now), ``unplaceable``
    maps job ids to the reason they could not be placed, and
    ``besteffort_to_kill`` lists running besteffort jobs whose resources a job
    starting now needs.
    """

    placements: list[Allocation] = field(default_factory=list)
    unplaceable: dict[int, str] = field(default_factory=dict)
    besteffort_to_kill: list[int] = field(default_factory=list)
    #: why a placed job starts later than the chart alone allows (quotas), by job id
    notes: dict[int, str] = field(default_factory=dict)
