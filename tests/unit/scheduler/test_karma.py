"""OAR's karma: the formula of OAR3's ``kao/karma.py`` and the order it gives within a queue priority."""

from __future__ import annotations

import pytest

from oar_celery.scheduler import Job, Level, Moldable, Resource, ResourceGroup, schedule
from oar_celery.scheduler.karma import KarmaPolicy, Usage, karma, parse_targets, set_karma


def test_targets_are_read_from_oar_perl_hash_text() -> None:
    assert parse_targets("{alice => 70, bob => 30.5}") == {"alice": 70.0, "bob": 30.5}
    assert parse_targets("{'default': 21}") == {"default": 21.0}
    assert parse_targets("{}") == {}
    with pytest.raises(ValueError, match="bad fair-share target"):
        parse_targets("{alice 70}")


def usage(**used: float) -> Usage:
    found = Usage()
    for user, seconds in used.items():
        found.add(user, "p", "USED", seconds)
        found.add(user, "p", "ASKED", seconds * 2)
    return found


def test_karma_is_oars_formula() -> None:
    policy = KarmaPolicy(window=3600, user_targets={"alice": 70, "bob": 30}, project_targets={"p": 50},
                         coef_project=0.5, coef_user=1.0, coef_user_ask=2.0)
    past = usage(alice=600, bob=400)
    expected = 0.5 * (1000 / 1000 - 0.5) + 1.0 * (600 / 1000 - 0.7) + 2.0 * (1200 / 2000 - 0.7)
    assert karma(policy, past, "alice", "p") == pytest.approx(expected)


def test_without_usage_the_karma_is_minus_the_target() -> None:
    policy = KarmaPolicy(window=3600, user_targets={"alice": 70, "bob": 30})
    assert karma(policy, Usage(), "alice", "x") == pytest.approx(-1.4)
    assert karma(policy, Usage(), "carol", "x") == 0.0


def job(job_id: int, user: str, priority: int = 0) -> Job:
    shape = Moldable((ResourceGroup((Level("resource_id", 1),)),), 60, job_id)
    return Job(job_id, [shape], user=user, queue_priority=priority, submission_time=job_id)


def test_who_used_more_than_their_target_goes_after_within_a_priority_only() -> None:
    policy = KarmaPolicy(window=3600, user_targets={"alice": 70, "bob": 30})
    jobs = [job(1, "alice"), job(2, "alice"), job(3, "bob"), job(4, "alice", priority=5)]
    set_karma(policy, {0: usage(alice=900, bob=100)}, jobs)  # alice 90 % for a 70 % target
    result = schedule(0, [Resource(1, "n1")], [], jobs, security_time=0)
    starts = {p.job_id: p.start for p in result.placements}
    assert starts[4] == 0  # a higher queue priority first, whatever the karma
    assert starts[3] < starts[1] < starts[2]  # then bob (under his share), then alice's in FIFO order


def test_with_karma_off_the_order_is_first_come() -> None:
    jobs = [job(1, "alice"), job(2, "bob"), job(3, "alice")]
    result = schedule(0, [Resource(1, "n1")], [], jobs, security_time=0)
    assert [p.job_id for p in sorted(result.placements, key=lambda p: p.start)] == [1, 2, 3]
