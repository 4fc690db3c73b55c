"""OAR3's quotas in the pure scheduler: each kind of limit holds a job back and says which rule did."""

from __future__ import annotations

import time

import pytest

from oar_celery.scheduler import Allocation, Job, Level, Moldable, Resource, ResourceGroup, schedule
from oar_celery.scheduler.quotas import Quotas, QuotasError, applicable

NOW = 1_800_000_000


def job(job_id: int, user: str = "alice", cores: int = 1, walltime: int = 600, **fields: object) -> Job:
    shape = Moldable((ResourceGroup((Level("resource_id", cores),)),), walltime, job_id)
    return Job(job_id, [shape], user=user, submission_time=job_id, **fields)  # type: ignore[arg-type]


def run(rules: dict, jobs: list[Job], now: int = NOW, cores: int = 8, placed: list[Allocation] | None = None):
    resources = [Resource(i, f"n{(i - 1) // 4}") for i in range(1, cores + 1)]
    return schedule(now, resources, placed or [], jobs, security_time=0, quotas=Quotas.from_json(rules, cores))


def starts(result) -> dict[int, int]:  # type: ignore[no-untyped-def]
    return {p.job_id: p.start - NOW for p in result.placements}


def test_a_resources_quota_per_user_holds_the_third_core_back_and_names_the_rule() -> None:
    result = run({"quotas": {"*,*,*,/": [2, -1, -1]}}, [job(1), job(2), job(3), job(4, user="bob")])
    assert starts(result) == {1: 0, 2: 0, 3: 600, 4: 0}
    assert result.notes == {3: "Quotas limitation reached: nb resources quotas failed, rule (*,*,*,/), limit 2"}


def test_a_running_jobs_quota_counts_the_jobs_already_running() -> None:
    running = Allocation(9, 9, NOW - 100, 300, [8], user="alice", queue="default")
    result = run({"quotas": {"*,*,*,alice": [-1, 1, -1]}}, [job(1)], placed=[running])
    assert starts(result) == {1: 200}
    assert "nb jobs quotas failed, rule (*,*,*,alice), limit 1" in result.notes[1]


def test_a_resource_hours_quota_counts_cores_times_walltime() -> None:
    result = run({"quotas": {"*,*,*,*": [-1, -1, 1]}}, [job(1, walltime=1800), job(2, walltime=1800),
                                                         job(3, walltime=1800)])
    assert starts(result) == {1: 0, 2: 0, 3: 1800}
    assert "resources hours quotas failed, rule (*,*,*,*), limit 1" in result.notes[3]


def test_a_job_larger_than_its_quota_is_not_placed_and_says_why() -> None:
    result = run({"quotas": {"*,*,*,/": [2, -1, -1]}}, [job(1, cores=3)])
    assert result.placements == []
    assert result.unplaceable == {1: "Quotas limitation reached: nb resources quotas failed, rule (*,*,*,/), limit 2"}


def test_queue_project_and_type_rules_each_count_their_own_jobs() -> None:
    rules = {"quotas": {"night,*,*,*": [1, -1, -1], "*,projA,*,*": [1, -1, -1], "*,*,gpu,*": [1, -1, -1]},
             "job_types": ["gpu"]}
    jobs = [job(1, queue="night"), job(2, queue="night"), job(3, project="projA"), job(4, project="projA"),
            job(5, types={"gpu": ""}), job(6, types={"gpu": ""}), job(7)]
    assert starts(run(rules, jobs)) == {1: 0, 2: 600, 3: 0, 4: 600, 5: 0, 6: 600, 7: 0}


def test_the_most_specific_rule_applies() -> None:
    rules = {("*", "*", "*", "*"): (1, -1, -1), ("*", "*", "*", "/"): (2, -1, -1), ("*", "*", "*", "john"): (3, -1, -1)}
    assert applicable(rules, ["*"], "default", "p", [], "john") == ("*", "*", "*", "john")
    assert applicable(rules, ["*"], "default", "p", [], "alice") == ("*", "*", "*", "/")
    result = run({"quotas": {"*,*,*,*": [8, -1, -1], "*,*,*,john": [3, -1, -1]}},
                 [job(i, user="john") for i in range(1, 5)])
    assert starts(result) == {1: 0, 2: 0, 3: 0, 4: 600}


def test_ALL_stands_for_the_cluster_resources() -> None:
    result = run({"quotas": {"*,*,*,/": ["0.5*ALL", -1, -1]}}, [job(i) for i in range(1, 6)])
    assert sorted(starts(result).values()) == [0, 0, 0, 0, 600]


def test_a_long_queue_of_one_user_waits_its_turn_job_after_job() -> None:
    # over a hundred steps of the user's counter above the limit: each job still starts when the one before ends
    result = run({"quotas": {"*,*,*,/": [-1, 1, -1]}}, [job(i) for i in range(1, 151)] + [job(151, user="bob")])
    assert starts(result) == {**{i: 600 * (i - 1) for i in range(1, 151)}, 151: 0}
    assert len(result.notes) == 149


def test_a_counter_no_waiting_job_is_checked_against_does_not_change_what_others_get() -> None:
    # the cluster-wide rule applies to no job (the per-user rule is more specific): it is not counted
    rules = {"quotas": {"*,*,*,*": [1, -1, -1], "*,*,*,/": [2, -1, -1]}}
    result = run(rules, [job(1), job(2), job(3), job(4, user="bob"), job(5, user="bob")])
    assert starts(result) == {1: 0, 2: 0, 3: 600, 4: 0, 5: 0}


def test_of_two_limits_passed_at_once_the_note_names_the_first() -> None:
    result = run({"quotas": {"*,*,*,/": [1, 1, -1]}}, [job(1), job(2)])
    assert starts(result) == {1: 0, 2: 600}
    assert "nb resources quotas failed" in result.notes[2]


def monday(hour: int, minute: int = 0) -> int:
    """A Monday of 2027 at this local time."""
    return int(time.mktime((2027, 1, 4, hour, minute, 0, 0, 0, -1)))


def test_a_temporal_quota_changes_at_its_period_boundary() -> None:
    rules = {"periodical": [["08:00-19:00 mon-fri * *", "day", "office hours"], ["* * * *", "night", "otherwise"]],
             "day": {"*,*,*,/": [1, -1, -1]}, "night": {"*,*,*,/": [4, -1, -1]}}
    at = monday(18, 50)
    result = run(rules, [job(1), job(2), job(3)], now=at)
    assert {p.job_id: p.start for p in result.placements} == {1: at, 2: monday(19), 3: monday(19)}
    assert "rule (*,*,*,/), limit 1" in result.notes[2]
    after = run(rules, [job(2), job(3)], now=monday(19, 0))
    assert {p.job_id: p.start for p in after.placements} == {2: monday(19), 3: monday(19)}


def test_a_oneshot_overrides_the_week() -> None:
    rules = {"quotas": {"*,*,*,*": [8, -1, -1]},
             "oneshot": [["2027-01-04 00:00", "2027-01-05 00:00", "holiday", "closed"]],
             "holiday": {"*,*,*,*": [1, -1, -1]}}
    result = run(rules, [job(1), job(2)], now=monday(10))
    assert {p.job_id: p.start for p in result.placements} == {1: monday(10), 2: monday(10, 10)}


def test_bad_quota_files_are_refused_with_what_is_wrong() -> None:
    for data, text in (({"quotas": {"*,*,*": [1, 1, 1]}}, "queue,project,job_type,user"),
                       ({"quotas": {"*,*,/,*": [1, 1, 1]}}, "job type"),
                       ({"quotas": {"*,*,*,*": [1, "lots", 1]}}, "bad quota value"),
                       ({"periodical": [["25:00-26:00 mon * *", "x"]], "x": {}}, "bad periodical"),
                       ({"periodical": [["* mon * *", "missing"]]}, "not defined")):
        with pytest.raises(QuotasError, match=text):
            Quotas.from_json(data, 8)
