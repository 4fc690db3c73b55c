"""Fair-share on a real cluster: two users with a 70/30 target share a busy cluster by their targets.

Every job of the first user is submitted before any of the second's, so
first come, first served would give the first user every core until their
jobs run out. With karma on, the core-seconds the jobs started while both
users had jobs waiting split close to 70/30, and each started job keeps the
karma it had (``oarstat -f``).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from oar_celery.config import settings
from tests.integration.users import throwaway_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
JOBS_EACH = 36


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[str, str]]:
    with throwaway_user() as first, throwaway_user() as second:
        yield first, second


@pytest.fixture(scope="module")
def fair_cluster(cluster_factory, users):  # type: ignore[no-untyped-def]
    first, second = users
    return cluster_factory(
        nodes=2, cores=2, OAR_FAIRSHARING_ENABLED="yes", OAR_SCHEDULER_FAIRSHARING_WINDOW_SIZE="3600",
        OAR_SCHEDULER_FAIRSHARING_USER_TARGETS=f"{{{first} => 70, {second} => 30}}", OAR_ACCOUNTING_WINDOW="3600",
    )


def submit_as(cluster, user: str, count: int, directory: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Jobs of ``user`` in one batch, as the head takes them from a client with no authd (the user is trusted)."""
    from oar_celery.client.transport import call

    saved = {key: os.environ.get(key) for key in cluster.env if key.startswith("OAR_")}
    os.environ.update({key: value for key, value in cluster.env.items() if key.startswith("OAR_")})
    settings.cache_clear()
    try:
        requests = [{"user": user, "command": "sleep 1", "resources": ["/core=1,walltime=0:05:00"],
                     "directory": directory, "submission_id": uuid.uuid4().hex} for _ in range(count)]
        answers = call("oar.almighty.submit_many", {"requests": requests})["results"]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        settings.cache_clear()
    return [job_id for answer in answers for job_id in answer["job_ids"]]


def test_two_users_with_a_70_30_target_share_a_busy_cluster_by_it(fair_cluster, users) -> None:  # type: ignore[no-untyped-def]
    first, second = users
    directory = tempfile.mkdtemp(prefix="oar-fairshare-")
    os.chmod(directory, 0o1777)
    jobs = submit_as(fair_cluster, first, JOBS_EACH, directory) + submit_as(fair_cluster, second, JOBS_EACH, directory)
    fair_cluster.wait_for(jobs, timeout=240)
    rows = fair_cluster.query(
        "SELECT job_user, start_time, stop_time, state, last_karma FROM jobs WHERE job_id = ANY(:ids) "
        "ORDER BY start_time", ids=jobs)
    assert {state for *_, state, _ in rows} == {"Terminated"}
    # contention: from when the first cores were refilled until one user had no job left to start
    last_start = {user: max(start for who, start, *_ in rows if who == user) for user in users}
    window = [row for row in rows[4:] if row[1] <= min(last_start.values())]
    used = {user: sum(stop - start for who, start, stop, *_ in window if who == user) for user in users}
    share = used[first] / (used[first] + used[second])
    assert 0.55 <= share <= 0.85, (share, used)
    assert all(karma is not None for *_, karma in rows)
    full = fair_cluster.run("oarstat", "-f", "-j", str(jobs[-1]))
    assert full.returncode == 0 and "    last_karma = " in full.stdout  # OAR3 names it after its column
    days = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400)) + ", " + time.strftime(
        "%Y-%m-%d", time.localtime(time.time() + 86400))
    summary = fair_cluster.run("oarstat", "-u", second, "--accounting", days)
    assert summary.returncode == 0 and "Last Karma: " in summary.stdout, summary.stdout + summary.stderr
