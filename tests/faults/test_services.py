"""Redis restarted in the middle of a flood, PostgreSQL restarted while jobs run.

Both run on private servers started by the test: the machine's own are
shared with other test runs. Redis runs without persistence, so its restart
loses every queued message, as a crash would: the database is the truth and
the periodic cycles must recover every job from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import FAST
from tests.faults.counting import count, flood_ids, launch_command, start_flood, wait_submitted
from tests.faults.services import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.cluster


def test_redis_restarted_mid_flood(cluster_factory, private_redis: PrivateRedis, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=32, cpus=2, OAR_BROKER_URL=private_redis.url, **FAST)
    command = launch_command(launches, 1)
    flood = start_flood(cluster, 300, command)
    wait_submitted(cluster, 75)
    private_redis.restart(pause=1)
    accepted = flood_ids(flood)
    # Submissions made while Redis was down were refused to their clients; the cluster goes on.
    accepted += flood_ids(start_flood(cluster, 100, command))
    counts = count("Redis restarted mid-flood", cluster, accepted, launches, timeout=120)
    assert counts.accepted >= 175
    counts.check()


def test_restoring_unacknowledged_messages_while_redis_is_down_does_not_fail(private_redis: PrivateRedis) -> None:
    """The step where Celery's worker shut down instead of reconnecting, when Redis was still down.

    On a connection error the worker collects its connection, then closes its
    channel, which puts the messages it had not acknowledged back on their
    queue; kombu's own transport raised there.
    """
    from kombu import Connection, Queue

    from oar_celery.broker import TRANSPORT

    with Connection(private_redis.url, transport=TRANSPORT) as connection:
        queue = Queue("oar.test.close", routing_key="oar.test.close")
        connection.SimpleQueue(queue).put({"job": 1})
        channel = connection.default_channel
        received: list[object] = []
        channel.Consumer(queue, callbacks=[lambda body, message: received.append(message)]).consume()
        connection.drain_events(timeout=5)
        assert len(received) == 1 and len(channel.qos._delivered) == 1
        private_redis.stop()
        connection.collect(socket_timeout=1)
        channel.qos.restore_unacked()  # logged, left to the visibility timeout
    private_redis.start()


def test_postgres_restarted_while_jobs_run(cluster_factory, private_postgres: PrivatePostgres,  # type: ignore[no-untyped-def]
                                           launches: Path) -> None:
    cluster = cluster_factory(nodes=2, cores=4, OAR_DATABASE_URL=private_postgres.url, **FAST)
    command = launch_command(launches, 4)
    accepted = [cluster.oarsub("-l", "/core=1", command) for _ in range(12)]
    cluster.wait_until(lambda: cluster.scalar("SELECT count(*) FROM jobs WHERE state = 'Running'"), 30,
                       "a job running")
    private_postgres.restart(pause=3)
    cluster.engine.dispose()
    accepted += [cluster.oarsub("-l", "/core=1", command) for _ in range(4)]
    counts = count("PostgreSQL restarted while jobs run", cluster, accepted, launches, timeout=90)
    counts.check()
    assert counts.finished == counts.accepted
