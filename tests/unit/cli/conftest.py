"""Fixtures for the user commands' pure tests: no broker, no head, a throwaway SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings from a clean environment; nothing reaches a real cluster by accident."""
    from oar_celery.config import settings

    for name in ("OAR_DATABASE_URL", "OAR_BROKER_URL", "OAR_RESULT_BACKEND", "OAR_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OAR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OAR_CONFIG_FILE", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("OAR_BROKER_URL", "redis://127.0.0.1:1/0")
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database with OAR's tables; OAR_DATABASE_URL points at it."""
    from oar_celery.config import settings
    from oar_celery.db.models import Base
    from oar_celery.db.session import dispose_engines, get_engine

    url = f"sqlite:///{tmp_path / 'oar.db'}"
    monkeypatch.setenv("OAR_DATABASE_URL", url)
    settings.cache_clear()
    Base.metadata.create_all(get_engine(url))
    yield url
    dispose_engines()
