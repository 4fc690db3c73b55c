"""Containers, placeholder/allowed and tokens in the pure scheduler: hand-built rounds and properties.

The property that matters most: an inner job never leaves its container's
resources or time, whatever the cluster, the container and the other jobs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oar_celery.scheduler import Allocation, Job, schedule
from tests.unit.scheduler.test_scheduler_gantt import NOW, H, by_job, cluster, job


def running(job_id: int, resource_ids: list[int], start: int = NOW, walltime: int = H, **types: str) -> Allocation:
    return Allocation(job_id, job_id, start, walltime, resource_ids, types=dict(types))


# ------------------------------------------------------------------------------ containers


def test_three_inner_jobs_two_at_once_the_third_waits_inside() -> None:
    resources = cluster(4, 2)  # 8 cores
    container = job(1, "/nodes=2,walltime=3:00:00", types={"container": ""})
    inner = [job(i, "/nodes=1,walltime=1:00:00", types={"inner": "1"}) for i in (2, 3, 4)]
    placed = by_job(schedule(NOW, resources, [], [container, *inner], security_time=0))
    box = set(placed[1].resource_ids)
    assert placed[1].start == NOW and len(box) == 4
    assert placed[2].start == placed[3].start == NOW
    assert placed[4].start == NOW + H  # the container has room for two at once
    for i in (2, 3, 4):
        assert set(placed[i].resource_ids) <= box


def test_inner_jobs_of_a_running_container_stay_in_it_while_the_rest_is_free() -> None:
    resources = cluster(4, 1)
    placed_now = [running(1, [3, 4], walltime=2 * H, container=""), running(2, [3], walltime=H, inner="1")]
    waiting = [job(5, "/nodes=1,walltime=1:00:00", types={"inner": "1"}), job(6, "/nodes=2,walltime=1:00:00")]
    placed = by_job(schedule(NOW, resources, placed_now, waiting, security_time=0))
    assert placed[5].resource_ids == [4] and placed[5].start == NOW
    assert sorted(placed[6].resource_ids) == [1, 2]  # the container's resources are not the cluster's


def test_an_inner_job_longer_than_its_container_is_told_why() -> None:
    resources = cluster(2, 1)
    result = schedule(NOW, resources, [running(1, [1], walltime=H, container="")],
                      [job(2, "/nodes=1,walltime=2:00:00", types={"inner": "1"})], security_time=0)
    assert result.unplaceable[2].startswith("it does not fit in its container 1")


def test_an_inner_job_without_its_container_on_the_chart_waits() -> None:
    result = schedule(NOW, cluster(2), [], [job(2, "/nodes=1", types={"inner": "9"})], security_time=0)
    assert result.unplaceable[2] == "its container is not placed yet"


def test_a_reservation_is_a_container() -> None:
    resources = cluster(2, 2)
    box = job(1, "/nodes=1,walltime=2:00:00", types={"container": ""}, reservation_start=NOW + H)
    placed = by_job(schedule(NOW, resources, [], [box, job(2, "/core=2,walltime=1:00:00", types={"inner": "1"})],
                             security_time=0))
    assert placed[2].start == NOW + H and set(placed[2].resource_ids) <= set(placed[1].resource_ids)


def test_containers_of_one_name_make_one_chart() -> None:
    resources = cluster(3, 1)
    placed = [running(1, [1], walltime=2 * H, container="group"), running(2, [3], walltime=2 * H, container="group")]
    waiting = [job(i, "/nodes=1,walltime=1:00:00", types={"inner": "group"}) for i in (5, 6, 7)]
    got = by_job(schedule(NOW, resources, placed, waiting, security_time=0))
    assert {got[5].resource_ids[0], got[6].resource_ids[0]} == {1, 3} and got[5].start == got[6].start == NOW
    assert got[7].start == NOW + H and got[7].resource_ids[0] in (1, 3)


@st.composite
def container_rounds(draw: st.DrawFn) -> tuple[list, list[Allocation], list[Job]]:
    nodes = draw(st.integers(1, 4))
    cores = draw(st.integers(1, 3))
    resources = cluster(nodes, cores)
    ids = [r.id for r in resources]
    placed: list[Allocation] = []
    waiting: list[Job] = []
    next_id = 1
    for _ in range(draw(st.integers(1, 2))):
        if ids and draw(st.booleans()):  # running containers never share a resource
            box_ids = sorted(draw(st.sets(st.sampled_from(ids), min_size=1)))
            ids = [i for i in ids if i not in box_ids]
            start = NOW - draw(st.integers(0, H))
            placed.append(running(next_id, box_ids, start=start, walltime=draw(st.integers(1, 4)) * H, container=""))
        else:
            count = draw(st.integers(1, len(resources)))
            waiting.append(job(next_id, f"/core={count},walltime={draw(st.integers(1, 4))}:00:00",
                               types={"container": ""}))
        next_id += 1
    containers = list(range(1, next_id))
    for _ in range(draw(st.integers(0, 3))):
        waiting.append(job(next_id, f"/core={draw(st.integers(1, 3))},walltime={draw(st.integers(1, 5))}:00:00"))
        next_id += 1
    for _ in range(draw(st.integers(1, 6))):
        box = draw(st.sampled_from(containers))
        wall = draw(st.integers(1, 5 * 60))  # minutes
        waiting.append(job(next_id, f"/core={draw(st.integers(1, 3))},walltime={wall // 60}:{wall % 60:02d}:00",
                           types={"inner": str(box)}))
        next_id += 1
    return resources, placed, waiting


@settings(max_examples=200, deadline=None)
@given(container_rounds(), st.sampled_from([0, 60]))
def test_an_inner_job_never_leaves_its_container(data: tuple, security_time: int) -> None:
    resources, placed, waiting = data
    result = schedule(NOW, resources, placed, waiting, security_time=security_time)
    boxes = {a.job_id: a for a in [*placed, *result.placements] if "container" in a.types}
    inner = [a for a in result.placements if "inner" in a.types]
    for allocation in inner:
        box = boxes[int(allocation.types["inner"])]
        assert set(allocation.resource_ids) <= set(box.resource_ids)
        assert box.start <= allocation.start and allocation.stop + security_time <= box.stop
    for a in inner:  # and never shares a resource with another inner job at the same time
        for b in inner:
            if a.job_id < b.job_id and a.start < b.stop and b.start < a.stop:
                assert not set(a.resource_ids) & set(b.resource_ids)


# ----------------------------------------------------------------------- placeholder / allowed


def test_placeholder_resources_are_for_allowed_jobs_only() -> None:
    resources = cluster(4, 1)
    placed = [running(1, [1, 2], walltime=4 * H, placeholder="hold")]
    waiting = [
        job(2, "/nodes=2,walltime=1:00:00"),  # an ordinary job: only nodes 3 and 4
        job(3, "/nodes=1,walltime=1:00:00", types={"allowed": "hold"}),
        job(4, "/nodes=1,walltime=1:00:00", types={"allowed": "hold"}),
        job(5, "/nodes=1,walltime=1:00:00", types={"allowed": "other"}),
    ]
    got = by_job(schedule(NOW, resources, placed, waiting, security_time=0))
    assert sorted(got[2].resource_ids) == [3, 4] and got[2].start == NOW
    assert got[3].start == got[4].start == NOW
    assert {*got[3].resource_ids, *got[4].resource_ids} == {1, 2}  # two allowed jobs never share
    assert got[5].start == NOW + H  # another pool's job waits for free nodes


def test_an_ordinary_job_of_the_same_shape_does_not_hold_back_an_allowed_one() -> None:
    resources = cluster(3, 1)
    placed = [running(1, [1, 2], walltime=4 * H, placeholder="p")]
    waiting = [job(2, "/nodes=2,walltime=1:00:00"), job(3, "/nodes=2,walltime=1:00:00", types={"allowed": "p"})]
    got = by_job(schedule(NOW, resources, placed, waiting, security_time=0))
    assert got[2].start == NOW + 4 * H and got[3].start == NOW


def test_a_waiting_placeholder_lends_its_resources_in_the_same_round() -> None:
    resources = cluster(2, 1)
    waiting = [job(1, "/nodes=2,walltime=2:00:00", types={"placeholder": "p"}),
               job(2, "/nodes=1,walltime=1:00:00"), job(3, "/nodes=2,walltime=1:00:00", types={"allowed": "p"})]
    got = by_job(schedule(NOW, resources, [], waiting, security_time=0))
    assert got[1].start == NOW and got[2].start == NOW + 2 * H and got[3].start == NOW


def test_a_running_allowed_job_keeps_its_resources_from_the_pool() -> None:
    resources = cluster(2, 1)
    placed = [running(1, [1, 2], walltime=3 * H, placeholder="p"), running(2, [1], walltime=H, allowed="p")]
    got = by_job(schedule(NOW, resources, placed, [job(3, "/nodes=2,walltime=1:00:00", types={"allowed": "p"})],
                          security_time=0))
    assert got[3].start == NOW + H


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["plain", "allowed", "placeholder"]), st.integers(1, 3), st.integers(1, 3)),
             min_size=1, max_size=8),
    st.sets(st.integers(1, 6), max_size=4),
)
def test_placeholder_resources_are_never_shared(jobs: list[tuple[str, int, int]], held: set[int]) -> None:
    placed = [running(100, sorted(held), walltime=2 * H, placeholder="p")] if held else []
    waiting = [job(i, f"/core={cores},walltime={hours}:00:00", types={kind: "p"} if kind != "plain" else {})
               for i, (kind, cores, hours) in enumerate(jobs, start=1)]
    result = schedule(NOW, cluster(3, 2), placed, waiting, security_time=0)
    got = result.placements
    holders = [*placed, *(a for a in got if "placeholder" in a.types)]
    def overlap(a: Allocation, b: Allocation) -> bool:
        return a.start < b.stop and b.start < a.stop and bool(set(a.resource_ids) & set(b.resource_ids))

    for a in got:
        for b in got:  # no two jobs share a resource, but an allowed job and a placeholder
            if a.job_id < b.job_id and {"allowed", "placeholder"} != {*a.types, *b.types}:
                assert not overlap(a, b)
        for h in holders:  # only allowed jobs go on a placeholder's resources during its time
            if h.job_id != a.job_id and overlap(a, h):
                assert "allowed" in a.types
    assert {a.job_id for a in got} | set(result.unplaceable) == {j.id for j in waiting}


# ----------------------------------------------------------------------------------- tokens


def test_tokens_exhausted_make_the_next_token_job_wait() -> None:
    resources = cluster(4, 1)
    placed = [running(1, [1], walltime=H, **{"token:licence": "2"})]
    waiting = [job(2, "/nodes=1,walltime=1:00:00", types={"token:licence": "1"}),
               job(3, "/nodes=1,walltime=1:00:00", types={"token:licence": "2"}),
               job(4, "/nodes=1,walltime=1:00:00")]
    got = by_job(schedule(NOW, resources, placed, waiting, security_time=0, tokens={"licence": 3}))
    assert got[2].start == NOW  # 2 + 1 of 3
    assert got[3].start == NOW + H  # 2 more only once job 1 ends
    assert got[4].start == NOW  # no tokens, no wait


def test_a_token_the_cluster_lacks_is_never_granted() -> None:
    result = schedule(NOW, cluster(1), [], [job(1, "/nodes=1", types={"token:gpu": "1"})], security_time=0,
                      tokens={"licence": 1})
    assert result.unplaceable[1] == "its tokens are not available"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4)), min_size=1, max_size=8), st.integers(1, 4))
def test_tokens_in_use_never_exceed_the_total(jobs: list[tuple[int, int]], total: int) -> None:
    waiting = [job(i, f"/core=1,walltime={hours}:00:00", types={"token:t": str(count)})
               for i, (count, hours) in enumerate(jobs, start=1)]
    result = schedule(NOW, cluster(4, 2), [], waiting, security_time=0, tokens={"t": total})
    placed = result.placements
    for a in placed:
        in_use = sum(int(b.types["token:t"]) for b in placed if b.start <= a.start < b.stop)
        assert in_use <= total
    assert {a.job_id for a in placed} | set(result.unplaceable) == {j.id for j in waiting}
