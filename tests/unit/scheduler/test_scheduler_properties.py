"""Properties of scheduling rounds on random clusters and job sets (Hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oar_celery.scheduler import Allocation, Job, Resource, compile_filter, parse_moldables, schedule
from oar_celery.scheduler.placement import level_value

NOW = 100_000
SEC = 60
LABELS = ("resource_id", "network_address", "cpu", "core", "switch", "host")
COLUMNS = {"mem": "int", "switch": "str", "core": "int", "resource_id": "int", "network_address": "str"}
REQUESTS = [
    "/resource_id=1",
    "/resource_id=3",
    "/nodes=1",
    "/nodes=2",
    "/nodes=1/core=1",
    "/nodes=2/core=2",
    "/switch=1/nodes=2",
    "/switch=1/nodes=1/core=2",
    "/nodes=BEST",
    "/nodes=BEST/core=1",
    "/core=ALL",
    "{mem > 32}/nodes=1",
    "{switch = 'A'}/core=2",
]
FILTERS = [None, None, None, "mem >= 64", "switch IN ('A', 'C')"]
TYPES = [{}, {}, {}, {"timesharing": "user,*"}, {"timesharing": "*,*"}]


@st.composite
def clusters(draw: st.DrawFn) -> list[Resource]:
    nodes = draw(st.integers(1, 6))
    same_size = draw(st.booleans())
    cores = draw(st.integers(1, 3))
    resources: list[Resource] = []
    for node in range(nodes):
        switch = draw(st.sampled_from("ABC"))
        mem = draw(st.sampled_from([16, 64, 128]))
        state = draw(st.sampled_from(["Alive"] * 6 + ["Absent", "Suspected", "Dead"]))
        for _ in range(cores if same_size else draw(st.integers(1, 3))):
            rid = len(resources) + 1
            rank = draw(st.integers(0, 20))  # an order that splits nodes (see resource_order)
            props: dict[str, object] = {"switch": switch, "mem": mem, "core": rid, "rank": rank}
            resources.append(Resource(id=rid, network_address=f"n{node}", state=state, properties=props))
    return resources


@st.composite
def running(draw: st.DrawFn, resources: Sequence[Resource]) -> list[Allocation]:
    """Running jobs on disjoint resources (timesharing aside, a cluster never holds overlaps)."""
    free = [r.id for r in resources if r.state == "Alive"]
    allocations = []
    for job_id in range(1000, 1000 + draw(st.integers(0, 3))):
        if not free:
            break
        taken = draw(st.lists(st.sampled_from(free), min_size=1, max_size=3, unique=True))
        free = [rid for rid in free if rid not in taken]
        start = NOW - draw(st.integers(0, 3000))
        walltime = draw(st.integers(3001, 9000))
        allocations.append(Allocation(job_id, 0, start, walltime, sorted(taken)))
    return allocations


@st.composite
def jobs(draw: st.DrawFn, first_id: int = 1, count: tuple[int, int] = (1, 8)) -> list[Job]:
    out = []
    for job_id in range(first_id, first_id + draw(st.integers(*count))):
        texts = draw(st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=2))
        walltimes = [draw(st.sampled_from(["0:10", "0:30", "1", "2:15"])) for _ in texts]
        moldables = parse_moldables(
            [f"{text},walltime={w}" for text, w in zip(texts, walltimes, strict=True)],
            default_walltime=3600,
            hierarchy_labels=LABELS,
        )
        out.append(
            Job(
                id=job_id,
                moldables=moldables,
                queue_priority=draw(st.sampled_from([0, 0, 5])),
                submission_time=job_id,
                user=draw(st.sampled_from(["alice", "bob"])),
                properties_filter=draw(st.sampled_from(FILTERS)),
                types=draw(st.sampled_from(TYPES)),
                dependencies=draw(st.lists(st.sampled_from(range(first_id, job_id)), max_size=1))
                if job_id > first_id and draw(st.integers(0, 4)) == 0
                else [],
                reservation_start=NOW + draw(st.sampled_from([0, 600, 5000])) if draw(st.integers(0, 9)) == 0 else None,
            )
        )
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Resource], list[Allocation], list[Job]]:
    resources = draw(clusters())
    return resources, draw(running(resources)), draw(jobs())


def _may_share(a: Allocation, b: Allocation) -> bool:
    """Both timeshare with the same spec, and the same user when the spec says ``user``."""
    spec = a.types.get("timesharing")
    if spec is None or spec != b.types.get("timesharing"):
        return False
    return not spec.startswith("user") or a.user == b.user


def _verify_group(chosen: set[int], universe: list[Resource], levels, depth: int = 0) -> bool:  # type: ignore[no-untyped-def]
    """Independent check of one hierarchy level: counts of distinct values and whole leaves."""
    level = levels[depth]
    inside = [r for r in universe if r.id in chosen]
    values = {level_value(r, level.name) for r in inside}
    every = {level_value(r, level.name) for r in universe}
    if isinstance(level.count, int) and len(values) != level.count:
        return False
    if level.count == "ALL" and values != every:
        return False
    if not values:
        return False
    for value in values:
        block = [r for r in universe if level_value(r, level.name) == value]
        if depth == len(levels) - 1:
            if {r.id for r in block} != {r.id for r in inside if level_value(r, level.name) == value}:
                return False  # a leaf is taken whole
        elif not _verify_group(chosen, block, levels, depth + 1):
            return False
    return True


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([("resource_id",), ("rank",)]))
def test_no_overlap_and_requests_are_honoured(scenario, order) -> None:  # type: ignore[no-untyped-def]
    resources, placed, waiting = scenario
    result = schedule(NOW, resources, placed, waiting, security_time=SEC, columns=COLUMNS, resource_order=order)
    assert {a.job_id for a in result.placements} | set(result.unplaceable) == {j.id for j in waiting}

    # No resource is used twice at once (security time included) unless both jobs timeshare.
    everything = [*placed, *result.placements]
    for i, a in enumerate(everything):
        for b in everything[i + 1 :]:
            if not set(a.resource_ids) & set(b.resource_ids):
                continue
            if _may_share(a, b):
                continue
            if a in placed and b in placed:
                continue
            assert a.stop + SEC <= b.start or b.stop + SEC <= a.start, (a, b)

    by_id = {r.id: r for r in resources}
    jobs_by_id = {j.id: j for j in waiting}
    for allocation in result.placements:
        job = jobs_by_id[allocation.job_id]
        assert allocation.start >= NOW
        if job.reservation_start is not None:
            assert allocation.start == job.reservation_start
        for dep in job.dependencies if job.reservation_start is None else []:  # reservations keep their time
            dep_allocation = next((a for a in result.placements if a.job_id == dep), None)
            assert dep_allocation is not None, "a job whose dependency is unplaceable is unplaceable"
            assert allocation.start >= dep_allocation.stop
        assert all(by_id[rid].state == "Alive" for rid in allocation.resource_ids)
        moldable = next(m for m in job.moldables if m.moldable_id == allocation.moldable_id)
        assert allocation.walltime == moldable.walltime
        (group,) = moldable.groups
        job_filter = compile_filter(job.properties_filter, COLUMNS)
        group_filter = compile_filter(group.property_filter, COLUMNS)
        universe = [
            r
            for r in resources
            if r.state == "Alive"
            and job_filter.matches({**r.properties, "resource_id": r.id, "network_address": r.network_address})
            and group_filter.matches({**r.properties, "resource_id": r.id, "network_address": r.network_address})
        ]
        assert set(allocation.resource_ids) <= {r.id for r in universe}
        assert _verify_group(set(allocation.resource_ids), universe, group.levels), (allocation, group)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), jobs(first_id=500, count=(1, 1)))
def test_a_job_added_at_the_end_delays_nobody(scenario, extra) -> None:  # type: ignore[no-untyped-def]
    resources, placed, waiting = scenario
    (late,) = extra
    late.queue_priority = -1
    late.reservation_start = None
    late.submission_time = 10**9
    before = schedule(NOW, resources, placed, waiting, security_time=SEC, columns=COLUMNS)
    after = schedule(NOW, resources, placed, [*waiting, late], security_time=SEC, columns=COLUMNS)
    starts_after = {a.job_id: a.start for a in after.placements}
    for allocation in before.placements:
        assert starts_after[allocation.job_id] == allocation.start
    assert set(before.unplaceable) <= set(after.unplaceable)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_jobs_start_now_when_the_cluster_allows(scenario) -> None:  # type: ignore[no-untyped-def]
    """A lone job on an idle cluster starts now if it is satisfiable at all."""
    resources, _, waiting = scenario
    job = waiting[0]
    job.reservation_start = None
    result = schedule(NOW, resources, [], [job], security_time=SEC, columns=COLUMNS)
    if result.placements:
        assert result.placements[0].start == NOW


@st.composite
def repetitive_jobs(draw: st.DrawFn) -> list[Job]:
    """Few request shapes, many walltimes: what the per-shape frontier is about."""
    shapes = draw(st.lists(st.sampled_from(REQUESTS[:6]), min_size=1, max_size=2, unique=True))
    out = []
    for job_id in range(1, draw(st.integers(4, 14)) + 1):
        text = draw(st.sampled_from(shapes))
        minutes = draw(st.integers(5, 150))
        moldables = parse_moldables([f"{text},walltime=0:{minutes}"], default_walltime=60, hierarchy_labels=LABELS)
        out.append(Job(id=job_id, moldables=moldables, submission_time=job_id))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_frontier_only_skips_what_cannot_fit(data) -> None:  # type: ignore[no-untyped-def]
    """Searching every job from ``now`` gives the very same plan as starting at the frontier."""
    from oar_celery.scheduler import rounds as package

    resources = data.draw(clusters())
    placed = data.draw(running(resources))
    waiting = data.draw(repetitive_jobs())
    fast = schedule(NOW, resources, placed, waiting, security_time=SEC, columns=COLUMNS)
    original = package.Frontier.bound
    package.Frontier.bound = lambda self, walltime: 0  # type: ignore[method-assign]
    try:
        slow = schedule(NOW, resources, placed, waiting, security_time=SEC, columns=COLUMNS)
    finally:
        package.Frontier.bound = original  # type: ignore[method-assign]
    assert fast == slow
