"""A cluster with its REST API for the API tests, and an HTTP client that speaks to it as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import LocalCluster
from tests.faults.services import free_port

HERE = Path(__file__).parent


class Api:
    """The API of one test cluster: its URL, tokens made by the admin's command, plain HTTP calls."""

    def __init__(self, cluster: LocalCluster, port: int) -> None:
        self.cluster = cluster
        #: OAR3's revocation file of this cluster (absent until a test writes it)
        self.revocations = Path(cluster.env["OAR_API_REVOKED_TOKENS"])
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def token(self, user: str) -> str:
        """A token for ``user``, from ``oar-celery api token USER`` (what an admin runs)."""
        result = self.cluster.admin("api", "token", user)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().removeprefix("OAR_API_TOKEN=")

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    def wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get("/version").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the API did not answer on {self.url}\n{self.cluster.logs()}")


def start_api_cluster(cluster_factory: Any, workdir: Path, nodes: int = 2, **overrides: str) -> Api:
    """A cluster of ``nodes`` nodes x 2 cores that proves its users (``--auth``), with its API on a free port.

    The front web server is 127.0.0.1: the tests' own address; 127.0.0.2 is anybody else.
    """
    port = free_port()
    cluster = cluster_factory(
        nodes=nodes, cores=2, up_args=("--auth", "--api-port", str(port)),
        OAR_API_TRUSTED_PROXIES="127.0.0.1", OAR_API_REVOKED_TOKENS=str(workdir / "revoked.json"),
        **{"OAR_WALLTIME_CHANGE_ENABLED": "1", **overrides},
    )
    api = Api(cluster, port)
    api.wait_up()
    return api


@pytest.fixture(scope="module")
def api(cluster_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    client = start_api_cluster(cluster_factory, tmp_path_factory.mktemp("api"))
    yield client
    client.http.close()


def http_as(api: Api, user: str, calls: list[dict[str, Any]], *, source: str = "127.0.0.1") -> list[dict[str, Any]]:
    """Make HTTP calls from another unix account's process (and from ``source``); their status and JSON.

    Each call is ``{"method", "path", "headers"?, "json"?}``. The process warms up as
    root (the test's Python lives where the account cannot read), then becomes the
    account: what it can reach is what that user can.
    """
    result = subprocess.run(
        [sys.executable, str(HERE / "http_as.py"), user, api.url, source, json.dumps(calls)],
        env=api.cluster.env, capture_output=True, text=True, timeout=120, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return [dict(answer) for answer in json.loads(result.stdout)]


def is_root() -> bool:
    return os.geteuid() == 0
