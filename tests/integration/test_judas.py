"""Judas's notifications on a real cluster, with a real SMTP server (aiosmtpd) started by the test.

Mails (``--notify mail:``) and scripts (``--notify exec:``, run as the job's
user), tags that select events, a failing notification that is recorded and
never changes the job's fate, the admin's mail when a node is suspected.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from tests.cluster import LocalCluster
from tests.integration.users import throwaway_user, uid_of

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

ADMIN = "admin@example.org"
#: Seconds the test SMTP server takes to accept a mail to ``slow@``.
SLOW_SMTP = 4


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if any(rcpt.startswith("slow@") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(SLOW_SMTP)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self, recipient: str | None = None) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages if recipient is None or m["To"] == recipient]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def cluster(cluster_factory, smtp: tuple[Inbox, int]) -> LocalCluster:  # type: ignore[no-untyped-def]
    return cluster_factory(
        nodes=2, cores=1, OAR_SMTP_HOST="127.0.0.1", OAR_SMTP_PORT=str(smtp[1]), OAR_ADMIN_MAIL=ADMIN,
        OAR_MAIL_SENDER="oar@example.org", OAR_NOTIFY_TIMEOUT="5",
    )


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """A directory every user can use (pytest's own live under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="oar-judas-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_mails_for_running_and_end_have_oars_subject(cluster: LocalCluster, smtp: tuple[Inbox, int]):
    inbox = smtp[0]
    job_id = cluster.oarsub("--notify", "mail:user@example.org", "-n", "mailjob", "-l", "nodes=1", "sleep 0.5")
    cluster.wait_for(job_id, timeout=20)
    wanted = [f"*OAR* [RUNNING]: {job_id} (mailjob) on node", f"*OAR* [END]: {job_id} (mailjob) on node"]
    cluster.wait_until(lambda: len(inbox.subjects("user@example.org")) >= 2, timeout=10, message="two mails")
    subjects = sorted(inbox.subjects("user@example.org"), key=lambda subject: "[END]" in subject)
    assert [s[: len(w)] for s, w in zip(subjects, wanted, strict=True)] == wanted, subjects
    assert all(s.split(" on ")[1] in cluster.hosts for s in subjects)


def test_tags_select_the_events_and_error_is_its_own_tag(cluster: LocalCluster, smtp: tuple[Inbox, int]):
    inbox = smtp[0]
    # OAR3: an exit code alone is no error (the job ends Terminated); a kill is
    job_id = cluster.oarsub("--notify", "[ERROR]mail:tags@example.org", "-l", "nodes=1", "sleep 30")
    cluster.wait_for(job_id, ["Running"], timeout=20)
    assert cluster.run("oardel", str(job_id)).returncode == 0
    assert cluster.wait_for(job_id, timeout=20) == {job_id: "Error"}
    cluster.wait_until(lambda: inbox.subjects("tags@example.org"), timeout=10, message="error mail")
    time.sleep(0.5)
    assert [s.split(":")[0] for s in inbox.subjects("tags@example.org")] == ["*OAR* [ERROR]"]


def test_exec_script_runs_as_the_jobs_user_with_oars_arguments(cluster: LocalCluster, shared_dir: Path):
    with throwaway_user() as user:
        record = shared_dir / "notified.txt"
        script = shared_dir / "notify.sh"
        script.write_text(f'#!/bin/sh\necho "$(id -u) $*" >> {record}\n')
        script.chmod(0o755)
        job_id = submit_as(cluster, user, shared_dir, "true", name="execjob", notify=f"exec:{script} extra")
        cluster.wait_for(job_id, timeout=20)
        assert cluster.job(job_id)["state"] == "Terminated"
        cluster.wait_until(lambda: record.exists() and len(record.read_text().splitlines()) >= 2, timeout=10,
                           message="two script runs")
        # the two notifications are tasks of their own: for a job this short they may run in either order
        lines = sorted(record.read_text().splitlines(), key=lambda line: " END " in line)
        uid = uid_of(user)
        assert lines[0].startswith(f"{uid} extra {job_id} execjob RUNNING ")
        assert lines[1].startswith(f"{uid} extra {job_id} execjob END ")


def test_a_failing_notification_is_an_event_and_the_job_still_ends_well(cluster: LocalCluster):
    job_id = cluster.oarsub("--notify", "[END]exec:/nonexistent/notify.sh", "-l", "nodes=1", "true")
    cluster.wait_for(job_id, timeout=20)
    assert cluster.job(job_id)["state"] == "Terminated"
    cluster.wait_until(lambda: "USER_EXEC_NOTIFICATION" in cluster.events(job_id), timeout=10,
                       message="failure event")


def test_a_slow_mail_server_does_not_delay_job_reports(cluster: LocalCluster, smtp: tuple[Inbox, int]):
    """Notifications are tasks of their own: the end report never waits for SMTP."""
    inbox = smtp[0]
    job_id = cluster.oarsub("--notify", "mail:slow@example.org", "-l", "nodes=1", "sleep 1")
    cluster.wait_for(job_id, ["Running", "Terminated"], timeout=20)
    cluster.wait_for(job_id, ["Terminated"], timeout=20)
    assert inbox.subjects("slow@example.org") == []  # the RUNNING mail is still on its way
    cluster.wait_until(lambda: len(inbox.subjects("slow@example.org")) == 2, timeout=3 * SLOW_SMTP,
                       message="slow mails delivered")


def test_the_admin_is_mailed_when_a_node_is_suspected(cluster: LocalCluster, smtp: tuple[Inbox, int]):
    inbox = smtp[0]
    with cluster.engine.begin() as connection:
        connection.execute(
            text("UPDATE resources SET expiry_date = :t WHERE network_address = 'node2'"), {"t": time.time() - 1}
        )
    cluster.wait_until(lambda: any("node2" in s for s in inbox.subjects(ADMIN)), timeout=15, message="admin mail")


def test_each_daemon_kind_logs_to_its_own_file(cluster: LocalCluster):
    logs = cluster.state_dir / "log"
    for kind in ("head", "beat", "node-node1", "node-node2"):
        text = (logs / f"oar-{kind}.log").read_text()
        assert "[INFO]" in text or "[DEBUG]" in text, kind
    assert "notification END failed" in (logs / "oar-head.log").read_text()


def submit_as(cluster: LocalCluster, user: str, directory: Path, command: str, **request: str) -> int:
    """Submit a job owned by ``user`` through the client API (the user cannot run our Python)."""
    code = "import json, sys\nfrom oar_celery.client import api\nprint(api.submit(json.loads(sys.argv[1]))[0])\n"
    payload = {"user": user, "command": command, "directory": str(directory), "resources": ["nodes=1"], **request}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(payload)], env=cluster.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())
