"""What running the scheduler on real database rows showed about the pure package.

Jobs loaded from the database never share a :class:`Moldable`: each has its
own ``moldable_id``. The round's caches (compiled requests, the per-shape
frontier) are keyed by the moldable, so with real rows they never hit, and a
round of 10,000 jobs of the benchmark's workload takes about 5x longer than
``bench/scheduler.py`` measures (1.1 s instead of 0.22 s here). The id names a
row; it is not part of the request's shape.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from oar_celery.scheduler import Job, Level, Moldable, Resource, ResourceGroup, placement, schedule

NOW = 1_700_000_000


def _cluster(nodes: int = 4, cores: int = 2) -> list[Resource]:
    return [
        Resource(id=n * cores + c + 1, network_address=f"n{n}", properties={"core": n * cores + c + 1})
        for n in range(nodes)
        for c in range(cores)
    ]


def test_one_request_compiled_per_shape_with_database_moldable_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    original = placement.MoldableRequest.__init__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(placement.MoldableRequest, "__init__", counting)
    shape = Moldable(groups=(ResourceGroup((Level("resource_id", 1),)),), walltime=600)
    jobs = [
        Job(id=i, moldables=[replace(shape, moldable_id=100 + i)], submission_time=NOW - 50 + i, user="u")
        for i in range(1, 41)
    ]
    result = schedule(NOW, _cluster(), [], jobs, security_time=60)
    assert len(result.placements) == 40
    assert {a.moldable_id for a in result.placements} == {100 + i for i in range(1, 41)}
    assert len(built) == 1
