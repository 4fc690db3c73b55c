"""Kombu's Redis transport, made to survive a broker that is still down when a worker reconnects.

When Redis goes away, the worker closes its broker connection before
reconnecting, and closing tries to put the messages it had received but not
acknowledged back on their queue. If Redis is still down at that moment,
kombu fails there with an ``AttributeError`` (the connection it would use
is already released), which is not a connection error: the worker then shuts
down instead of reconnecting, and its pool can hang while stopping. A head
worker stuck like that stops the whole cluster.

Those messages are not lost by skipping the restore: they stay in Redis's
unacknowledged set and kombu puts them back after the visibility timeout
(and a Redis that restarted without persistence has forgotten them anyway;
the database is the truth). So the restore is tried, and a failure is logged.

The transport is installed as kombu's ``redis`` scheme rather than named by
``broker_transport``: URLs then keep their ``redis://`` scheme, and what reads
the scheme to know the broker (Flower's broker page and queue lengths) knows it.
"""

from __future__ import annotations

import logging

import redis
from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

#: ``broker_transport`` setting that selects this transport.
TRANSPORT = "oar_celery.broker:Transport"


class QoS(kombu_redis.QoS):
    """Redis QoS whose restore at close never turns a broker outage into a worker shutdown."""

    def restore_unacked(self, client: object = None) -> None:
        try:
            super().restore_unacked(client)
        except (AttributeError, OSError, redis.RedisError) as error:
            logger.warning(
                "broker unreachable while closing: %d unacknowledged messages left to the visibility timeout (%s)",
                len(self._delivered or ()), error,
            )


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


def use_for_redis_urls() -> None:
    """Make ``redis://`` broker URLs use this transport in this process."""
    kombu_transport.TRANSPORT_ALIASES["redis"] = TRANSPORT
