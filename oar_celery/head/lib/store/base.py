"""The store's interface and the values it takes and gives (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from oar_celery.scheduler import types as sched


@dataclass(frozen=True)
class ReportChange:
    """What one node report asks of a job: ``Running``, or a final state with what the job left."""

    job_id: int
    new_state: str
    ran: bool
    exit_code: int | None = None
    message: str | None = None
    #: The node that sent the report: the change is refused unless the job holds a resource on it (None: unchecked).
    host: str | None = None


@dataclass(frozen=True)
class Moved:
    """A job a batch of reports moved: the state it left, the one it took, and its ``--notify``."""

    job_id: int
    old_state: str
    new_state: str
    ran: bool
    notify: str | None


@dataclass
class ReportsApplied:
    """What a batch of reports did: the jobs it moved, and the (job, host) claims refused as another node's job."""

    moved: list[Moved]
    foreign: set[tuple[int, str]]


class Store(Protocol):
    """The state changes; every one is conditional, so two actors racing never both win."""

    def move(
        self,
        session: Session,
        job_ids: list[int],
        new_state: str,
        *,
        expected: Sequence[str],
        at: float,
        each: Mapping[str, Mapping[int, object]],
        release: bool,
        columns: dict[str, Any],
    ) -> list[int]:
        """Move the jobs still in ``expected`` to ``new_state``, logged; the ids that moved.

        ``columns``: values (or SQL expressions) set on every job that moves;
        ``each``: a value per job (``exit_code`` ``None`` keeps the old one);
        ``release``: free the moved jobs' resources.
        """
        ...

    def to_launch(self, session: Session, allocations: Sequence[sched.Allocation]) -> list[int]:
        """``Waiting`` → ``toLaunch`` with each job's moldable and resources; the ids that moved."""
        ...

    def start_now(
        self, session: Session, allocations: Sequence[sched.Allocation], alternatives: Mapping[int, Collection[int]],
        at: float,
    ) -> list[Any]:
        """``Waiting`` → ``toLaunch`` → ``Launching`` (both logged) with resources, predictions of each job's
        ``alternatives`` (its moldables) deleted; a row of :data:`.sql.LAUNCH_COLUMNS` per job that moved."""
        ...

    def apply_reports(self, session: Session, changes: Sequence[ReportChange], at: float) -> ReportsApplied:
        """A batch of reports: ``Launching`` → ``Running``; started jobs → their final state, through
        ``Running`` (logged) when the end came first and the job ran; resources freed, frags done and the
        ended jobs that started accounted (:func:`oar_celery.head.lib.accounting.account`).

        A change with a ``host`` applies only if its job holds a resource on that host, or runs there as a
        cosystem or deploy job (:func:`oar_celery.head.lib.trust.off_their_hosts`); the others are refused,
        and given back in ``foreign``: a node's key speaks for its own jobs alone."""
        ...
