"""A submission sent again (the client got no answer) is answered with its jobs, never inserted twice."""

from __future__ import annotations

import uuid

import pytest

from oar_celery.config import settings

pytestmark = pytest.mark.cluster


@pytest.fixture
def client_env(cluster, monkeypatch):
    for key, value in cluster.env.items():
        if key.startswith("OAR_"):
            monkeypatch.setenv(key, value)
    settings.cache_clear()
    yield cluster
    settings.cache_clear()


def _request(cluster, submission_id):
    return {"user": "root", "command": "true", "resources": ["/core=1"], "directory": str(cluster.workdir),
            "submission_id": submission_id}


def test_the_same_submission_twice_makes_one_job(client_env):
    from oar_celery.client.transport import call

    cluster = client_env
    submission_id = uuid.uuid4().hex
    first = call("oar.almighty.submit", {"request": _request(cluster, submission_id)})
    second = call("oar.almighty.submit", {"request": _request(cluster, submission_id)})
    assert first == second and len(first["job_ids"]) == 1
    assert cluster.scalar("SELECT count(*) FROM jobs") == 1
    cluster.wait_for(first["job_ids"])


def test_a_batch_sent_again_answers_the_same_ids(client_env):
    from oar_celery.client.transport import call

    cluster = client_env
    before = cluster.scalar("SELECT count(*) FROM jobs")
    requests = [_request(cluster, uuid.uuid4().hex) for _ in range(5)]
    requests.append({**_request(cluster, uuid.uuid4().hex), "queue": "nosuchqueue"})
    first = call("oar.almighty.submit_many", {"requests": requests})["results"]
    second = call("oar.almighty.submit_many", {"requests": requests})["results"]
    assert [a.get("job_ids") for a in first] == [a.get("job_ids") for a in second]
    assert "nosuchqueue" in first[-1]["error"]
    assert cluster.scalar("SELECT count(*) FROM jobs") == before + 5


def test_the_client_api_names_each_submission(client_env):
    from oar_celery.client import api

    cluster = client_env
    job_ids = api.submit({"command": "true", "resources": ["/core=1"], "directory": str(cluster.workdir)})
    recorded = cluster.query("SELECT job_ids FROM job_submissions")
    assert any(str(job_ids[0]) in row[0] for row in recorded)
