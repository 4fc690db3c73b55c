"""The Gantt chart and the node grid in headless Chromium, on a running cluster: the DOM holds its jobs.

Screenshots are kept in ``build/test-artifacts/`` (or ``$OAR_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.browser import Browser
from tests.api.conftest import Api, start_api_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

ARTIFACTS = Path(os.environ.get("OAR_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "test-artifacts"))


@pytest.fixture(scope="module")
def api(cluster_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    client = start_api_cluster(cluster_factory, tmp_path_factory.mktemp("api"), nodes=3)
    yield client
    client.http.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    page = Browser()
    yield page
    page.close()


def count(browser: Browser, selector: str) -> int:
    return int(browser.evaluate(f"document.querySelectorAll({selector!r}).length"))


def test_the_gantt_shows_running_predicted_reserved_jobs_and_dead_resources_and_follows_a_start(
    api: Api, browser: Browser
) -> None:
    cluster = api.cluster
    oar = api.as_("oar")
    running = cluster.oarsub("-l", "/nodes=2/core=2,walltime=0:10:00", "sleep 600")
    cluster.wait_for(running, ("Running",))
    waiting = cluster.oarsub("-l", "/nodes=2/core=2,walltime=0:05:00", "sleep 600")
    reserved = cluster.oarsub("-r", _in_hours(2), "-l", "/core=1,walltime=0:30:00", "true")
    dead = [r["id"] for r in api.get("/resources/nodes/node3").json()["items"]]
    for resource_id in dead:
        assert api.post(f"/resources/{resource_id}/state", json={"state": "Dead"}, headers=oar).json()[
            "exit_status"] == 0
    cluster.wait_until(lambda: cluster.scalar("SELECT count(*) FROM resources WHERE state = 'Dead'") == 2, 30,
                       "node3 Dead")
    cluster.wait_until(lambda: cluster.scalar(
        "SELECT count(*) FROM gantt_jobs_predictions p JOIN moldable_job_descriptions m"
        " ON m.moldable_id = p.moldable_job_id WHERE m.moldable_job_id = :id", id=waiting), 30, "a prediction")

    browser.open(f"{api.url}/drawgantt?refresh=1")
    browser.wait_for("Number(document.getElementById('summary').dataset.draws) > 0")
    assert count(browser, f'rect.job[data-job-id="{running}"][data-kind="running"]') >= 1
    assert count(browser, f'rect.job[data-job-id="{waiting}"][data-kind="predicted"]') >= 1
    assert count(browser, f'rect.job.reservation[data-job-id="{reserved}"]') == 1
    assert count(browser, 'rect.down.Dead') == 2
    assert count(browser, "text[data-host]") == 3
    browser.evaluate(f"document.querySelector('rect.job[data-job-id=\"{waiting}\"]')"
                     ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert f"job {waiting}" in browser.evaluate("document.getElementById('details').textContent")
    browser.screenshot(ARTIFACTS / "gantt.png")

    assert api.delete(f"/jobs/{running}", headers=api.as_("root")).json()["exit_status"] == 0
    cluster.wait_for(waiting, ("Running",))
    browser.wait_for(f"document.querySelectorAll('rect.job[data-job-id=\"{waiting}\"][data-kind=\"running\"]')"
                     ".length > 0", timeout=30)  # the page refreshed by itself
    assert count(browser, f'rect.job[data-job-id="{waiting}"][data-kind="predicted"]') == 0
    browser.screenshot(ARTIFACTS / "gantt-started.png")

    browser.open(f"{api.url}/monika?refresh=1")
    browser.wait_for("Number(document.getElementById('summary').dataset.draws) > 0")
    assert count(browser, ".node") == 3
    assert browser.evaluate("document.querySelector('.node[data-host=\"node3\"]').dataset.state") == "Dead"
    assert count(browser, f'.cell.busy[data-job-id="{waiting}"]') == 4
    assert count(browser, ".cell.Dead") == 2
    browser.screenshot(ARTIFACTS / "grid.png")
    assert (ARTIFACTS / "grid.png").stat().st_size > 1000


def _in_hours(hours: float) -> str:
    import datetime

    return (datetime.datetime.now() + datetime.timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")
