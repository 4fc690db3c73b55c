"""Services for the tests: a fresh PostgreSQL database and a Redis database of their own.

Each test session creates its own PostgreSQL database and takes a free Redis
database number (0 is left alone), so that several runs on one machine never
read each other's messages. ``OAR_TEST_PG`` names the server
(default ``postgresql://postgres@127.0.0.1:5432``) and ``OAR_TEST_REDIS`` the
Redis server (default ``redis://127.0.0.1:6379``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oar_celery.db import scratch
from oar_celery.head.lib.holders import holder_is_dead, holder_token

PG_SERVER = os.environ.get("OAR_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("OAR_TEST_REDIS", "redis://127.0.0.1:6379")
LOCK_TTL = 3 * 3600


#: Replace a lock's value only if it is still the one we saw (a dead holder's).
_SWAP = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end"


def _take_redis_db() -> tuple[int, str]:
    import redis

    lock_client = redis.Redis.from_url(f"{REDIS_SERVER}/0")
    token = holder_token()
    for number in range(1, 16):
        key = f"oar-celery-test-db:{number}"
        taken = lock_client.set(key, token, nx=True, ex=LOCK_TTL)
        if not taken:
            held = lock_client.get(key)
            if held is not None and holder_is_dead(held.decode(errors="replace")):
                taken = held is not None and bool(lock_client.eval(_SWAP, 1, key, held, token, LOCK_TTL))
        if taken:
            redis.Redis.from_url(f"{REDIS_SERVER}/{number}").flushdb()
            return number, token
    raise RuntimeError("no free Redis database for the tests (all of 1..15 are locked)")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redis

    number, token = _take_redis_db()
    yield f"{REDIS_SERVER}/{number}"
    lock_client = redis.Redis.from_url(f"{REDIS_SERVER}/0")
    redis.Redis.from_url(f"{REDIS_SERVER}/{number}").flushdb()
    if lock_client.get(f"oar-celery-test-db:{number}") == token.encode():
        lock_client.delete(f"oar-celery-test-db:{number}")


def create_pg_database() -> str:
    """A new empty PostgreSQL database; its URL."""
    return scratch.create_database(PG_SERVER, prefix="oar_test")


def drop_pg_database(url: str) -> None:
    scratch.drop_database(PG_SERVER, url)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oar-state")


@pytest.fixture(scope="session")
def oar_env(pg_url: str, redis_url: str, state_dir: Path) -> dict[str, str]:
    """The environment every process of the test cluster runs with."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
    env.update(
        OAR_STATE_DIR=str(state_dir),
        OAR_DATABASE_URL=pg_url,
        OAR_BROKER_URL=redis_url,
        OAR_CONFIG_FILE=str(state_dir / "absent.conf"),
        OAR_LOG_LEVEL="DEBUG",
        OAR_SCHEDULER_MIN_TIME="0.1",
        OAR_ALMIGHTY_TICK="1",
        OAR_SARKO_PERIOD="1",
        OAR_FINAUD_PERIOD="2",
        OAR_FINAUD_TIMEOUT="2",
        OAR_KILL_GRACE="2",
        OAR_SECURITY_TIME="0",
        OAR_FLOWER_PORT="0",
        OAR_METRICS_PORT="0",
        OAR_API_PORT="0",
        OAR_ALLOW_ROOT_JOBS="yes",  # the tests run as root, as 'oar-celery up' does for its starter
    )
    return env


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def cluster_factory(redis_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Start clusters with settings of the test's own (``OAR_*`` overrides); all stopped at the end.

    Clusters of one session share its Redis database, so only one runs at a time:
    starting a new one stops the previous one.
    """
    from tests.cluster import LocalCluster

    started: list[tuple[LocalCluster, str]] = []

    def stop_all() -> None:
        while started:
            cluster, url = started.pop()
            cluster.down()
            drop_pg_database(url)

    def make(nodes: int = 2, cores: int = 2, cpus: int = 1, flower_port: int = 0, up_args: tuple[str, ...] = (),
             **overrides: str) -> LocalCluster:
        stop_all()
        _flush_redis(redis_url)
        url = create_pg_database()
        state = tmp_path_factory.mktemp("cluster")
        workdir = state / "work"
        workdir.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("OAR_")}
        env.update(
            OAR_STATE_DIR=str(state), OAR_DATABASE_URL=url, OAR_BROKER_URL=redis_url,
            OAR_CONFIG_FILE=str(state / "absent.conf"), OAR_LOG_LEVEL="DEBUG",
            OAR_SCHEDULER_MIN_TIME="0.1", OAR_ALMIGHTY_TICK="1", OAR_SARKO_PERIOD="1",
            OAR_FINAUD_PERIOD="2", OAR_FINAUD_TIMEOUT="2", OAR_NODE_CHANGE_STATE_PERIOD="2",
            OAR_KILL_GRACE="2", OAR_SECURITY_TIME="0", OAR_FLOWER_PORT="0", OAR_ALLOW_ROOT_JOBS="yes",
            # no fixed ports: clusters of several test runs share this machine (a test names its own)
            OAR_METRICS_PORT="0", OAR_API_PORT="0",
        )
        env.update(overrides)
        cluster = LocalCluster(env, workdir)
        started.append((cluster, url))
        cluster.up(nodes=nodes, cores=cores, cpus=cpus, flower_port=flower_port, extra=up_args)
        return cluster

    make.stop_all = stop_all  # type: ignore[attr-defined]
    yield make
    stop_all()


@pytest.fixture
def quiet_redis(redis_url: str, cluster_factory) -> str:  # type: ignore[no-untyped-def]
    """The session's Redis database with no cluster running on it, for a test that starts its own processes.

    Two clusters on one Redis database would take each other's messages.
    """
    cluster_factory.stop_all()
    _flush_redis(redis_url)
    return redis_url


@pytest.fixture(scope="module")
def cluster(cluster_factory):  # type: ignore[no-untyped-def]
    """A cluster of 2 nodes x 2 cores with the test defaults, shared by a test module."""
    return cluster_factory(nodes=2, cores=2)
