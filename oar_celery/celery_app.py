"""The Celery application shared by the head, the nodes and beat.

Messages are JSON only: pickle is refused both ways. The head consumes
``oar.head``; each compute node consumes ``oar.node.<hostname>`` with a
prefetch of one, so a busy node never sits on messages. Tasks are routed by
name, never by a default queue that could send node work to the head.
"""

from __future__ import annotations

import os
import sys

from celery import Celery, signals
from kombu import Queue

from oar_celery.beat_schedule import build_schedule
from oar_celery.broker import use_for_redis_urls
from oar_celery.config import Settings, settings
from oar_celery.protocol.names import HEAD_QUEUE, node_queue, unacked_keys

__all__ = ["HEAD_QUEUE", "app", "node_queue"]

#: Modules holding the head's tasks; node tasks live in ``oar_celery.tasks.bipbip``.
HEAD_TASK_MODULES = (
    "oar_celery.almighty",
    "oar_celery.tasks.submit",
    "oar_celery.tasks.reports",
    "oar_celery.tasks.control",
    "oar_celery.tasks.finaud",
    "oar_celery.tasks.judas",
    "oar_celery.tasks.node_admin",
    "oar_celery.tasks.queue_admin",
    "oar_celery.tasks.walltime",
)
NODE_TASK_MODULES = ("oar_celery.tasks.bipbip",)


def configure(app: Celery, config: Settings) -> None:
    if config.broker_url.startswith("redis://"):
        # plain Redis: kombu's transport with the reconnection fix of oar_celery.broker
        use_for_redis_urls()
    app.conf.update(
        broker_url=config.broker_url,
        result_backend=config.backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_default_queue=HEAD_QUEUE,
        task_queues=(Queue(HEAD_QUEUE, routing_key=HEAD_QUEUE),),
        task_create_missing_queues=True,
        task_routes={"oar.node.*": {"queue": "oar.node.unrouted"}, "oar.*": {"queue": HEAD_QUEUE}},
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # Celery's default: Flower turns task events on while it runs (a few hundred
        # microseconds per task on every worker); OAR_TASK_EVENTS keeps them always on.
        worker_send_task_events=config.task_events,
        task_send_sent_event=config.task_events,
        task_track_started=False,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "fanout_prefix": True,
            "fanout_patterns": True,
            "ack_emulation": not is_node_worker(),
            **unacked_options(),
        },
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        timezone="UTC",
        enable_utc=True,
        beat_schedule=build_schedule(config),
        beat_max_loop_interval=1.0,
    )


def unacked_options() -> dict[str, str]:
    """A node's own keys for kombu's unacknowledged messages (the broker's ACL gives a node only its own).

    Kombu keeps every consumer's unacknowledged messages, whole, in one hash
    (``unacked``): a node that could read it would read every node's launches.
    """
    host = os.environ.get("OAR_NODE_HOSTNAME", "")
    if not is_node_worker() or not host:
        return {}
    names = ("unacked_key", "unacked_index_key", "unacked_mutex_key")
    return dict(zip(names, unacked_keys(host), strict=True))


def is_node_worker() -> bool:
    """Whether this process is a compute node's worker (``oar-celery worker node`` sets its kind).

    A node's tasks are all acknowledged when they start and none runs long,
    so the Redis transport's emulation of acknowledgements (two round trips
    per message, to keep it in an unacknowledged set until then) protects
    nothing on a node but the instant between receiving a message and
    starting it. A message lost there is sent again like any lost message:
    launches by the Runner, kills by Leon, pings by Finaud.
    """
    return os.environ.get("OAR_PROCESS_KIND", "").startswith("node-")


def create_app(config: Settings | None = None) -> Celery:
    app = Celery("oar")
    configure(app, config or settings())
    return app


app = create_app()


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    """Workers and beat log through Judas, to the file of their process kind."""
    from oar_celery.logs import setup_logging

    setup_logging(os.environ.get("OAR_PROCESS_KIND", "head"))


@signals.worker_process_init.connect
def _forget_parent_connections(**_: object) -> None:
    """A forked pool process must open its own database connections.

    Only a process that loaded the database layer has any: importing it here
    would cost a node worker, which never touches the database, 17 MB.
    """
    session = sys.modules.get("oar_celery.db.session")
    if session is not None:
        session.dispose_engines()


if os.environ.get("OAR_PROCESS_KIND") == "flower":
    from oar_celery.monitor import install

    install(settings().flower_refresh)
