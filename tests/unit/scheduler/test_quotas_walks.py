"""The quotas' walk along a counter: where a job may start, and which limit the note names.

A job's walk may start where an earlier job of the same counter, asking no
more, was refused up to (:class:`Refusals`); these tests check on random
workloads that this changes nothing: the start found is the first one the
straightforward check allows, and placements and notes are those of the walk
from the job's own start.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oar_celery.scheduler import Allocation, Job, Level, Moldable, Resource, ResourceGroup, schedule
from oar_celery.scheduler.quotas import Ledger, Limits, Quotas, Refusals, kind_of

NOW = 1_800_000_000
WALLTIMES = (300, 600, 900, 1800, 3600)
limit = st.one_of(st.just(-1), st.integers(min_value=1, max_value=12))


@st.composite
def rules(draw: st.DrawFn) -> dict[str, list[int]]:
    """A per-user rule, sometimes a cluster-wide one beside it."""
    per_user = [draw(limit), draw(st.one_of(st.just(-1), st.integers(1, 6))),
                draw(st.one_of(st.just(-1), st.integers(1, 10)))]
    found = {"*,*,*,/": per_user}
    if draw(st.booleans()):
        found["*,*,*,*"] = [draw(st.integers(4, 24)), -1, -1]
    return found


@st.composite
def jobs(draw: st.DrawFn) -> list[Job]:
    drawn = []
    for job_id in range(1, draw(st.integers(1, 40)) + 1):
        if draw(st.integers(0, 9)) < 7:
            level = Level("resource_id", draw(st.integers(1, 6)))
        else:
            level = Level("network_address", draw(st.integers(1, 2)))
        walltime = draw(st.sampled_from(WALLTIMES))
        shape = Moldable((ResourceGroup((level,)),), walltime, job_id)
        drawn.append(Job(job_id, [shape], user=f"u{draw(st.integers(0, 2))}", submission_time=job_id))
    return drawn


def outcome(quotas: dict[str, object], waiting: list[Job], cores: int) -> tuple[object, ...]:
    resources = [Resource(i, f"n{(i - 1) // 4}") for i in range(1, cores + 1)]
    result = schedule(NOW, resources, [], waiting, security_time=60,
                      quotas=Quotas.from_json({"quotas": quotas}, cores))
    placements = sorted((p.job_id, p.moldable_id, p.start, tuple(p.resource_ids)) for p in result.placements)
    return placements, sorted(result.notes.items()), sorted(result.unplaceable.items())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(quotas=rules(), waiting=jobs(), cores=st.sampled_from((8, 16, 32)))
def test_a_round_places_and_notes_the_same_whether_or_not_it_remembers_refusals(
    quotas: dict[str, object], waiting: list[Job], cores: int,
) -> None:
    remembered = outcome(quotas, waiting, cores)
    with patch.object(Refusals, "KEPT", 0):  # no record kept: every walk starts at the job's own start
        walked = outcome(quotas, waiting, cores)
    assert remembered == walked


def held(placed: list[tuple[int, int, int]], t: int) -> tuple[int, int, int]:
    """What the placed (start, count, walltime) hold at ``t``: resources, jobs, resource-seconds."""
    covering = [(count, walltime) for start, count, walltime in placed if start <= t < start + walltime]
    return sum(c for c, _ in covering), len(covering), sum(c * w for c, w in covering)


def first_allowed(placed: list[tuple[int, int, int]], limits: Limits, start: int, count: int,
                  walltime: int) -> int:
    """The straightforward check: every candidate start in turn, every instant of its window."""
    amounts = (count, 1, count * walltime)
    ends = {t for s, _, w in placed for t in (s, s + w)}
    for candidate in sorted({start} | {t for t in ends if t > start}):
        instants = [candidate, *(t for t in ends if candidate < t < candidate + walltime)]
        if all(limits[k] < 0 or held(placed, t)[k] + amounts[k] <= limits[k] for t in instants for k in range(3)):
            return candidate
    return -1


@settings(max_examples=200, deadline=None)
@given(
    per_user=st.tuples(limit, st.one_of(st.just(-1), st.integers(1, 5)), st.one_of(st.just(-1), st.integers(1, 6))),
    asks=st.lists(st.tuples(st.integers(0, 7200), st.integers(1, 6), st.sampled_from(WALLTIMES)),
                  min_size=1, max_size=40),
)
def test_a_counter_allows_a_job_first_where_the_straightforward_check_does(
    per_user: tuple[int, int, int], asks: list[tuple[int, int, int]],
) -> None:
    """Jobs of one user placed where the walk says, one after the other, as a round places them."""
    quotas = Quotas.from_json({"quotas": {"*,*,*,/": list(per_user)}}, 100)
    limits: Limits = quotas.rule_sets[None][("*", "*", "*", "/")]
    ledger, plain = Ledger(quotas), Ledger(quotas)
    kind = kind_of("default", "", {}, "alice")
    placed: list[tuple[int, int, int]] = []
    for job_id, (offset, count, walltime) in enumerate(asks, start=1):
        start = NOW + offset
        later, why = ledger.chain(kind, start, walltime, count)
        with patch.object(Refusals, "KEPT", 0):
            assert plain.chain(kind, start, walltime, count) == (later, why)
        if any(-1 < limits[k] < (count, 1, count * walltime)[k] for k in range(3)):
            assert later == -1
            continue
        assert later == first_allowed(placed, limits, start, count, walltime)
        allocation = Allocation(job_id, job_id, later, walltime, list(range(count)), user="alice", queue="default")
        ledger.add(allocation, "")
        plain.add(allocation, "")
        placed.append((later, count, walltime))
