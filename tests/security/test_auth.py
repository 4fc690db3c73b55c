"""On a cluster with a key, the head believes credentials from authd, never a request's word."""

from __future__ import annotations

import pytest

from oar_celery.config import settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def auth_cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=1, cores=2, up_args=("--auth",))


@pytest.fixture
def as_client(auth_cluster, monkeypatch):  # type: ignore[no-untyped-def]
    """This test process as a client of the cluster (settings from its environment and oar.conf)."""
    for key, value in auth_cluster.env.items():
        if key.startswith("OAR_"):
            monkeypatch.setenv(key, value)
    settings.cache_clear()
    assert settings().auth_socket, "up --auth wrote the socket into the state directory's oar.conf"
    yield auth_cluster
    settings.cache_clear()


def _request(cluster, user="root"):  # type: ignore[no-untyped-def]
    return {"request": {"user": user, "command": "true", "resources": ["/core=1"],
                        "directory": str(cluster.workdir)}}


def test_the_commands_work_through_authd(auth_cluster):  # type: ignore[no-untyped-def]
    job_id = auth_cluster.oarsub("-l", "/core=1", "true")
    assert auth_cluster.wait_for(job_id) == {job_id: "Terminated"}
    assert auth_cluster.run("oardel", str(job_id)).returncode != 0  # finished: refused, but understood


def test_a_request_without_credential_is_refused(as_client):  # type: ignore[no-untyped-def]
    from oar_celery.client.transport import call

    before = as_client.scalar("SELECT count(*) FROM jobs")
    answer = call("oar.almighty.submit", _request(as_client))
    assert "credential" in answer["error"]
    assert as_client.scalar("SELECT count(*) FROM jobs") == before


def test_the_proven_user_replaces_the_one_named(as_client):  # type: ignore[no-untyped-def]
    from oar_celery.client.transport import call
    from oar_celery.protocol.auth import fetch_credential

    payload = _request(as_client, user="somebodyelse")
    answer = call("oar.almighty.submit", {**payload, "credential": fetch_credential(settings().auth_socket, payload)})
    job_id = answer["job_ids"][0]
    assert as_client.job(job_id)["job_user"] == "root"


def test_a_credential_is_good_for_one_request_once(as_client):  # type: ignore[no-untyped-def]
    from oar_celery.client.transport import call
    from oar_celery.protocol.auth import fetch_credential

    payload = _request(as_client)
    credential = fetch_credential(settings().auth_socket, payload)
    assert "job_ids" in call("oar.almighty.submit", {**payload, "credential": credential})
    replayed = call("oar.almighty.submit", {**payload, "credential": credential})
    assert "already used" in replayed["error"]
    other = {"request": {**payload["request"], "command": "rm -rf ~"}}
    moved = call("oar.almighty.submit", {**other, "credential": fetch_credential(settings().auth_socket, payload)})
    assert "does not match" in moved["error"]


def test_a_forged_credential_is_refused(as_client):  # type: ignore[no-untyped-def]
    from oar_celery.client.transport import call
    from oar_celery.protocol.auth import request_digest, sign

    payload = _request(as_client)
    forged = sign(b"not-the-cluster-key-at-all", "root", request_digest(payload))
    assert "does not match" in call("oar.almighty.submit", {**payload, "credential": forged})["error"]
