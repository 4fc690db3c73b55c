"""Fixtures of the fault suite: private services to restart, and the counts summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.counting import RESULTS
from tests.faults.services import PrivatePostgres, PrivateRedis

#: Faster timers than the integration defaults: the suite must fit in a few minutes.
FAST = {
    "OAR_CLIENT_TIMEOUT": "15",
    "OAR_HEAD_CONCURRENCY": "4",
}


@pytest.fixture
def launches(tmp_path: Path) -> Path:
    """The file every job of a case appends its id to (readable and writable by any job user)."""
    tmp_path.chmod(0o777)
    return tmp_path / "launches"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    reason = PrivatePostgres.unavailable()
    if reason:
        pytest.skip(reason)
    server = PrivatePostgres()
    server.init()
    yield server
    server.remove()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("fault counts")
        for counts in RESULTS:
            terminalreporter.write_line(counts.line())
