"""Desktop computing: a job is never placed on a resource past its ``available_upto``."""

from __future__ import annotations

from oar_celery.scheduler import Job, Resource, parse_moldables, schedule

NOW = 1_000_000
LABELS = ("resource_id", "network_address", "cpu", "core", "switch", "host")


def _job(job_id: int, request: str) -> Job:
    return Job(id=job_id, moldables=parse_moldables([request], default_walltime=3600, hierarchy_labels=LABELS))


def _resources(*uptos: int) -> list[Resource]:
    return [Resource(id=i + 1, network_address=f"n{i}", available_upto=upto) for i, upto in enumerate(uptos)]


def test_a_job_that_would_outlive_the_resource_goes_elsewhere() -> None:
    result = schedule(
        NOW, _resources(NOW + 600, 2147483647), [], [_job(1, "/nodes=1,walltime=1:00:00")], security_time=0
    )
    (placement,) = result.placements
    assert placement.resource_ids == [2] and placement.start == NOW


def test_a_short_job_fits_before_the_limit() -> None:
    result = schedule(NOW, _resources(NOW + 600, 0), [], [_job(1, "/nodes=2,walltime=0:05:00")], security_time=60)
    (placement,) = result.placements
    assert placement.resource_ids == [1, 2] and placement.start == NOW


def test_a_job_needing_the_expiring_resource_is_not_placed() -> None:
    result = schedule(NOW, _resources(NOW + 600, NOW - 10), [], [_job(1, "/nodes=1,walltime=1:00:00")], security_time=0)
    assert not result.placements and 1 in result.unplaceable
