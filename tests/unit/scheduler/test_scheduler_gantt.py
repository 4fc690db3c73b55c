"""Hand-built scheduling rounds whose exact answer we know."""

from __future__ import annotations

from oar_celery.scheduler import (
    Allocation,
    Job,
    Resource,
    check_satisfiable,
    parse_moldables,
    schedule,
)

NOW = 1_000_000
H = 3600
SEC = 60
LABELS = ("resource_id", "network_address", "cpu", "core", "switch", "host")


def cluster(nodes: int, cores: int = 1, **per_node: list[object]) -> list[Resource]:
    """``nodes`` nodes named n0.. with ``cores`` resources each; ``per_node`` sets properties."""
    resources = []
    for node in range(nodes):
        for core in range(cores):
            rid = node * cores + core + 1
            props: dict[str, object] = {"core": rid}
            props.update({name: values[node] for name, values in per_node.items()})
            resources.append(Resource(id=rid, network_address=f"n{node}", properties=props))
    return resources


def job(job_id: int, *requests: str, **fields: object) -> Job:
    moldables = parse_moldables(list(requests), default_walltime=H, hierarchy_labels=LABELS)
    fields.setdefault("submission_time", job_id)
    return Job(id=job_id, moldables=moldables, **fields)  # type: ignore[arg-type]


def hosts(resources: list[Resource], allocation: Allocation) -> set[str]:
    by_id = {r.id: r.network_address for r in resources}
    return {by_id[rid] for rid in allocation.resource_ids}


def by_job(result) -> dict[int, Allocation]:  # type: ignore[no-untyped-def]
    return {a.job_id: a for a in result.placements}


def test_conservative_backfilling_on_four_nodes() -> None:
    resources = cluster(4)
    jobs = [
        job(1, "nodes=2,walltime=1"),
        job(2, "nodes=4,walltime=1"),
        job(3, "nodes=2,walltime=0:30"),
        job(4, "nodes=2,walltime=2"),
    ]
    placed = by_job(schedule(NOW, resources, [], jobs, security_time=SEC))
    assert placed[1].start == NOW
    assert placed[2].start == NOW + H + SEC
    assert placed[3].start == NOW  # backfilled beside job 1 without delaying job 2
    assert placed[4].start == NOW + 2 * (H + SEC)
    assert set(placed[1].resource_ids).isdisjoint(placed[3].resource_ids)
    assert len(placed[2].resource_ids) == 4


def test_running_jobs_are_respected() -> None:
    resources = cluster(2)
    running = [Allocation(job_id=9, moldable_id=0, start=NOW - 600, walltime=H, resource_ids=[1])]
    placed = by_job(schedule(NOW, resources, running, [job(1, "nodes=2,walltime=1")], security_time=SEC))
    assert placed[1].start == NOW - 600 + H + SEC


def test_switch_keeps_hosts_together() -> None:
    # n0, n1 on switch A (n1 busy); n2, n3 on switch B: two hosts of one switch means B.
    resources = cluster(4, cores=2, switch=["A", "A", "B", "B"])
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[3])]
    result = schedule(NOW, resources, running, [job(1, "/switch=1/nodes=2")], security_time=SEC)
    allocation = by_job(result)[1]
    assert allocation.start == NOW
    assert hosts(resources, allocation) == {"n2", "n3"}
    assert len(allocation.resource_ids) == 4
    # One core per host still fits on switch A (n1 has a free core).
    result = schedule(NOW, resources, running, [job(1, "/switch=1/nodes=2/core=1")], security_time=SEC)
    assert hosts(resources, by_job(result)[1]) == {"n0", "n1"}


def test_nodes_take_whole_nodes_and_cores_count_resources() -> None:
    resources = cluster(2, cores=4)
    result = schedule(NOW, resources, [], [job(1, "/nodes=1"), job(2, "/nodes=1/core=2")], security_time=SEC)
    placed = by_job(result)
    assert placed[1].resource_ids == [1, 2, 3, 4]
    assert placed[2].resource_ids == [5, 6]


def test_moldable_picks_the_earliest_finish() -> None:
    resources = cluster(4)
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1, 2])]
    # 4 nodes for 1h can only start after job 9 (finish ~2h); 2 nodes for 1h30 start now.
    result = schedule(NOW, resources, running, [job(1, "nodes=4,walltime=1", "nodes=2,walltime=1:30")])
    allocation = by_job(result)[1]
    assert allocation.moldable_id == 1
    assert allocation.start == NOW
    # With a short enough wide alternative, the wide one wins.
    result = schedule(NOW, resources, running, [job(1, "nodes=4,walltime=0:10", "nodes=2,walltime=3")])
    assert by_job(result)[1].moldable_id == 0


def test_reservation_blocks_its_window() -> None:
    resources = cluster(2)
    reservation = job(1, "nodes=2,walltime=1", reservation_start=NOW + 1800)
    other = job(2, "nodes=1,walltime=1")
    short = job(3, "nodes=1,walltime=0:20")
    placed = by_job(schedule(NOW, resources, [], [other, short, reservation], security_time=SEC))
    assert placed[1].start == NOW + 1800
    assert placed[2].start == NOW + 1800 + H + SEC  # cannot run across the reservation
    assert placed[3].start == NOW  # fits before it


def test_reservation_that_cannot_be_honoured() -> None:
    resources = cluster(2)
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1])]
    result = schedule(NOW, resources, running, [job(1, "nodes=2,walltime=1", reservation_start=NOW + 60)])
    assert result.placements == []
    assert 1 in result.unplaceable


def test_accepted_reservation_in_placed_is_kept() -> None:
    resources = cluster(1)
    accepted = [Allocation(job_id=9, moldable_id=0, start=NOW + 1000, walltime=H, resource_ids=[1])]
    result = schedule(NOW, resources, accepted, [job(1, "nodes=1,walltime=1")], security_time=SEC)
    assert by_job(result)[1].start == NOW + 1000 + H + SEC


def test_dependency_chain() -> None:
    resources = cluster(4)
    jobs = [
        job(3, "nodes=1,walltime=1", dependencies=[2]),
        job(1, "nodes=1,walltime=1"),
        job(2, "nodes=1,walltime=0:30", dependencies=[1]),
        job(4, "nodes=1", dependencies=[77]),  # 77 finished long ago: ignored
    ]
    placed = by_job(schedule(NOW, resources, [], jobs, security_time=SEC))
    assert placed[1].start == NOW
    assert placed[2].start == placed[1].stop
    assert placed[3].start == placed[2].stop
    assert placed[4].start == NOW


def test_dependency_on_running_job_and_cycle() -> None:
    resources = cluster(4)
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1])]
    jobs = [
        job(1, "nodes=1", dependencies=[9]),
        job(2, "nodes=1", dependencies=[3]),
        job(3, "nodes=1", dependencies=[2]),
    ]
    result = schedule(NOW, resources, running, jobs)
    assert by_job(result)[1].start == NOW + H
    assert set(result.unplaceable) == {2, 3}


def test_property_filter_leaves_some_hosts() -> None:
    resources = cluster(4, mem=[16, 128, 32, 256])
    jobs = [job(1, "nodes=2", properties_filter="mem > 64"), job(2, "{mem > 64}/nodes=1")]
    placed = by_job(schedule(NOW, resources, [], jobs, security_time=SEC))
    assert hosts(resources, placed[1]) == {"n1", "n3"}
    assert placed[2].start == NOW + H + SEC
    result = schedule(NOW, resources, [], [job(3, "nodes=3", properties_filter="mem > 64")])
    assert result.unplaceable == {3: "There are not enough resources for your request"}


def test_bad_filter_is_unplaceable_with_reason() -> None:
    result = schedule(NOW, cluster(1), [], [job(1, "nodes=1", properties_filter="nope = 1")])
    assert "unknown property 'nope'" in result.unplaceable[1]


def test_only_alive_resources_are_used() -> None:
    resources = cluster(3)
    resources[0] = Resource(id=1, network_address="n0", state="Suspected")
    resources[1] = Resource(id=2, network_address="n1", state="Absent")
    result = schedule(NOW, resources, [], [job(1, "nodes=1"), job(2, "nodes=2")])
    assert by_job(result)[1].resource_ids == [3]
    assert 2 in result.unplaceable


def test_besteffort_is_killed_for_a_normal_job() -> None:
    resources = cluster(2)
    running = [
        Allocation(
            job_id=8,
            moldable_id=0,
            start=NOW - 10,
            walltime=10 * H,
            resource_ids=[1],
            types={"besteffort": ""},
        ),
        Allocation(job_id=9, moldable_id=0, start=NOW - 10, walltime=10 * H, resource_ids=[2], queue="besteffort"),
    ]
    waiting = [job(1, "nodes=1"), job(2, "nodes=1", queue="besteffort")]
    result = schedule(NOW, resources, running, waiting, security_time=SEC)
    placed = by_job(result)
    assert placed[1].start == NOW
    assert result.besteffort_to_kill == [8]
    assert placed[2].start > NOW  # waits behind the running besteffort job 9 and job 1


def test_besteffort_waits_behind_normal_jobs() -> None:
    resources = cluster(1)
    waiting = [job(1, "nodes=1", queue="besteffort", submission_time=0), job(2, "nodes=1", submission_time=5)]
    placed = by_job(schedule(NOW, resources, [], waiting, security_time=SEC))
    assert placed[2].start == NOW
    assert placed[1].start == NOW + H + SEC


def test_priority_then_fifo() -> None:
    resources = cluster(1)
    waiting = [job(1, "nodes=1"), job(2, "nodes=1", queue_priority=5), job(3, "nodes=1", submission_time=0)]
    placed = by_job(schedule(NOW, resources, [], waiting, security_time=0))
    assert [placed[i].start for i in (2, 3, 1)] == [NOW, NOW + H, NOW + 2 * H]


def test_timesharing_shares_between_compatible_jobs() -> None:
    resources = cluster(1)
    ts_user = {"timesharing": "user,*"}
    running = [
        Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1], types=ts_user, user="alice")
    ]
    waiting = [
        job(1, "nodes=1", types=ts_user, user="alice"),
        job(2, "nodes=1", types=ts_user, user="bob"),
        job(3, "nodes=1", user="alice"),
    ]
    placed = by_job(schedule(NOW, resources, running, waiting, security_time=SEC))
    assert placed[1].start == NOW  # same user: shares
    assert placed[2].start == NOW + H + SEC  # other user: waits
    assert placed[3].start > placed[2].start  # no timesharing type: waits for everyone

    anyone = {"timesharing": "*,*"}
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1], types=anyone, user="alice")]
    placed = by_job(schedule(NOW, resources, running, [job(1, "nodes=1", types=anyone, user="bob")]))
    assert placed[1].start == NOW


def test_all_and_best() -> None:
    resources = cluster(4)
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1])]
    placed = by_job(schedule(NOW, resources, running, [job(1, "nodes=BEST")], security_time=SEC))
    assert placed[1].start == NOW and placed[1].resource_ids == [2, 3, 4]
    placed = by_job(schedule(NOW, resources, running, [job(1, "nodes=ALL")], security_time=SEC))
    assert placed[1].start == NOW + H + SEC and placed[1].resource_ids == [1, 2, 3, 4]


def test_two_groups_use_distinct_resources() -> None:
    resources = cluster(3, gpu=["NO", "YES", "NO"])
    placed = by_job(schedule(NOW, resources, [], [job(1, "/nodes=2+{gpu='YES'}/nodes=1")]))
    assert sorted(placed[1].resource_ids) == [1, 2, 3]


def test_resource_order() -> None:
    resources = cluster(3, rank=[3, 1, 2])
    placed = by_job(schedule(NOW, resources, [], [job(1, "nodes=1")], resource_order=("rank",)))
    assert placed[1].resource_ids == [2]


def test_check_satisfiable() -> None:
    resources = cluster(3)
    resources[2] = Resource(id=3, network_address="n2", state="Dead")
    resources[1] = Resource(id=2, network_address="n1", state="Absent")
    two = parse_moldables(["nodes=2"], default_walltime=H, hierarchy_labels=LABELS)
    three = parse_moldables(["nodes=3"], default_walltime=H, hierarchy_labels=LABELS)
    assert check_satisfiable(two, resources, None, columns=None, hierarchy_labels=LABELS) is None
    message = check_satisfiable(three, resources, None, columns=None, hierarchy_labels=LABELS)
    assert message == "There are not enough resources for your request"
    assert check_satisfiable(three + two, resources, None, columns=None, hierarchy_labels=LABELS) is None


def test_a_thousand_mixed_jobs_on_a_thousand_resources_are_all_placed() -> None:
    """Its speed is measured by ``python -m bench scheduler``, not here."""
    resources = cluster(250, cores=4)
    requests = ["/resource_id=3", "/nodes=1", "/resource_id=8", "/nodes=2", "/resource_id=1"]
    walltimes = ["0:05", "0:30", "1", "2"]
    jobs = [job(i, f"{requests[i % len(requests)]},walltime={walltimes[i % len(walltimes)]}") for i in range(1, 1001)]
    result = schedule(NOW, resources, [], jobs, security_time=SEC)
    assert len(result.placements) == 1000


def test_identical_jobs_that_never_fit_are_all_refused() -> None:
    resources = [Resource(id=1, network_address="n0", available_upto=NOW + 600)]
    result = schedule(NOW, resources, [], [job(1, "nodes=1,walltime=1"), job(2, "nodes=1,walltime=1")])
    assert set(result.unplaceable) == {1, 2}
    assert "available_upto" in result.unplaceable[2]


def test_network_address_is_filterable_even_if_columns_omit_it() -> None:
    resources = cluster(3)
    result = schedule(NOW, resources, [], [job(1, "nodes=1", properties_filter="network_address = 'n2'")], columns={})
    assert by_job(result)[1].resource_ids == [3]


def test_running_job_past_its_walltime_still_holds_its_resources() -> None:
    resources = cluster(1)
    overdue = [Allocation(job_id=9, moldable_id=0, start=NOW - 2 * H, walltime=H, resource_ids=[1])]
    result = schedule(NOW, resources, overdue, [job(1, "nodes=1")], security_time=SEC)
    assert by_job(result)[1].start == NOW + SEC


def test_timesharing_by_name() -> None:
    resources = cluster(1)
    by_name = {"timesharing": "*,name"}
    running = [Allocation(job_id=9, moldable_id=0, start=NOW, walltime=H, resource_ids=[1], types=by_name, name="a")]
    waiting = [job(1, "nodes=1", types=by_name, name="a"), job(2, "nodes=1", types=by_name, name="b")]
    placed = by_job(schedule(NOW, resources, running, waiting, security_time=SEC))
    assert placed[1].start == NOW
    assert placed[2].start > NOW
