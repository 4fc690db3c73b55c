"""The job keys of one launch message share one reading of the cluster's keys and of the published nodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oar_celery.config import settings
from oar_celery.node.jobshell import KeyMaterial
from oar_celery.protocol.names import Key


@pytest.fixture
def keys_dir(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A keys directory of its own and the test's Redis database as broker."""
    monkeypatch.setenv("OAR_KEYS_DIR", str(tmp_path))
    monkeypatch.setenv("OAR_BROKER_URL", redis_url)
    monkeypatch.setenv("OAR_CONFIG_FILE", str(tmp_path / "absent.conf"))
    settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    client.delete(Key.JOBSHELL_SERVICES)
    yield tmp_path
    client.delete(Key.JOBSHELL_SERVICES)
    settings.cache_clear()


def _publish(redis_url: str, host: str, port: int) -> None:
    service = json.dumps({"address": "127.0.0.1", "port": port})
    redis.Redis.from_url(redis_url).hset(Key.JOBSHELL_SERVICES, host, service)


def _write_keys(keys_dir: Path) -> None:
    (keys_dir / "tls").mkdir(exist_ok=True)
    (keys_dir / "tls" / "jobshell.key").write_bytes(b"shared-secret\n")
    (keys_dir / "tls" / "ca.pem").write_text("CA\n")


def test_one_message_reads_the_published_nodes_once_and_the_next_message_again(keys_dir: Path, redis_url: str) -> None:
    _write_keys(keys_dir)
    _publish(redis_url, "node1", 7001)
    material = KeyMaterial(settings())
    key, ca, nodes = material.get()
    assert (key, ca, nodes) == (b"shared-secret", "CA\n", {"node1": ["127.0.0.1", 7001]})
    _publish(redis_url, "node2", 7002)
    assert material.get()[2] == {"node1": ["127.0.0.1", 7001]}
    assert KeyMaterial(settings()).get()[2] == {"node1": ["127.0.0.1", 7001], "node2": ["127.0.0.1", 7002]}


def test_a_failed_reading_is_tried_again_by_the_next_job(keys_dir: Path) -> None:
    material = KeyMaterial(settings())
    with pytest.raises(OSError):
        material.get()
    _write_keys(keys_dir)
    assert material.get()[0] == b"shared-secret"
