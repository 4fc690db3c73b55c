"""The job keys of one launch message share one reading of the cluster's keys and of the published nodes;
the material kept across launch messages is read again whenever it may have changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oar_celery.config import settings
from oar_celery.node import jobshell
from oar_celery.node.jobshell import KeyCache, KeyMaterial
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


def _write_keys(keys_dir: Path, key: bytes = b"shared-secret", ca: str = "CA\n") -> None:
    (keys_dir / "tls").mkdir(exist_ok=True)
    (keys_dir / "tls" / "jobshell.key").write_bytes(key + b"\n")
    (keys_dir / "tls" / "ca.pem").write_text(ca)


def _bump_times(path: Path) -> None:
    """As a rewrite a tick later: a coarse file clock may give two quick writes one time."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


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


def test_the_next_message_reuses_the_nodes_and_a_new_host_of_its_jobs_is_read(keys_dir: Path, redis_url: str) -> None:
    _write_keys(keys_dir, b"shared-secret-1", "CA-1\n")
    _publish(redis_url, "node1", 7001)
    cache = KeyCache(settings())
    assert cache.material(["node1"]).get() == (b"shared-secret-1", "CA-1\n", {"node1": ["127.0.0.1", 7001]})
    _publish(redis_url, "node2", 7002)
    assert cache.material(["node1"]).get()[2] == {"node1": ["127.0.0.1", 7001]}  # kept: no round trip
    assert cache.material(["node1", "node2"]).get()[2] == {"node1": ["127.0.0.1", 7001],
                                                            "node2": ["127.0.0.1", 7002]}


def test_a_node_published_again_is_seen_after_the_ttl_or_at_once_after_our_own_publication(
    keys_dir: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_keys(keys_dir, b"shared-secret-1", "CA-1\n")
    _publish(redis_url, "node1", 7001)
    clock = [1000.0]
    monkeypatch.setattr(jobshell.time, "monotonic", lambda: clock[0])
    cache = KeyCache(settings())
    assert cache.get(["node1"])[2] == {"node1": ["127.0.0.1", 7001]}
    _publish(redis_url, "node1", 7101)  # restarted on another port
    assert cache.get(["node1"])[2] == {"node1": ["127.0.0.1", 7001]}
    clock[0] += jobshell.NODES_TTL
    assert cache.get(["node1"])[2] == {"node1": ["127.0.0.1", 7101]}
    _publish(redis_url, "node1", 7201)
    cache.forget_nodes()
    assert cache.get(["node1"])[2] == {"node1": ["127.0.0.1", 7201]}


def test_a_rotated_shared_key_or_ca_is_read_again(keys_dir: Path, redis_url: str) -> None:
    _write_keys(keys_dir, b"shared-secret-1", "CA-1\n")
    cache = KeyCache(settings())
    assert cache.get()[:2] == (b"shared-secret-1", "CA-1\n")
    key_file = keys_dir / "tls" / "jobshell.key"
    key_file.write_bytes(b"shared-secret-2\n")  # in place: same inode, same size
    _bump_times(key_file)
    assert cache.get()[:2] == (b"shared-secret-2", "CA-1\n")
    replacement = keys_dir / "tls" / "new.key"
    replacement.write_bytes(b"shared-secret-3\n")
    replacement.replace(key_file)  # a new inode
    assert cache.get()[0] == b"shared-secret-3"
    (keys_dir / "tls" / "ca.pem").write_text("CA-2 longer\n")
    assert cache.get()[:2] == (b"shared-secret-3", "CA-2 longer\n")


def test_missing_keys_fail_each_job_until_they_are_there(keys_dir: Path) -> None:
    cache = KeyCache(settings())
    with pytest.raises(OSError):
        cache.material().get()
    _write_keys(keys_dir, b"shared-secret-1", "CA-1\n")
    assert cache.material().get()[0] == b"shared-secret-1"


def test_the_process_cache_follows_the_settings(keys_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = jobshell.key_cache(settings())
    assert jobshell.key_cache(settings()) is first
    settings.cache_clear()
    assert jobshell.key_cache(settings()) is not first
