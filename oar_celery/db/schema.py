"""Creating and upgrading the schema, and the rows every cluster needs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from oar_celery.db.models import DEFAULT_QUEUES, Queue
from oar_celery.db.session import get_engine, session_scope

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def init_database(url: str | None = None) -> None:
    """Bring the schema to the newest migration and add OAR's default queues.

    Safe to run any number of times: migrations already applied are skipped
    and existing queues are left as they are.
    """
    engine = get_engine(url)
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with session_scope(url) as session:
        existing = set(session.scalars(select(Queue.queue_name)))
        for name, priority in DEFAULT_QUEUES:
            if name not in existing:
                session.add(Queue(queue_name=name, priority=priority))


def schema_versions(url: str | None = None) -> tuple[str | None, str]:
    """The database's migration (None before ``db init``) and the newest one this package ships."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text

    engine = get_engine(url)
    newest = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head() or ""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None, newest
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return current, newest
