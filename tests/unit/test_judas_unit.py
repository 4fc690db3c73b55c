"""Judas without a cluster: notify methods and tags, mail and exec, per-process log files."""

from __future__ import annotations

import logging
import os
import pwd
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from oar_celery.config import Settings
from oar_celery.head.lib import judas

ALL_TAGS = ("RUNNING", "END", "ERROR", "INFO", "SUSPENDED", "RESUMING")


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Judas reads its settings through ``judas.settings``: give it ours."""
    values = Settings(state_dir=str(tmp_path), smtp_host="127.0.0.1", smtp_port=1, notify_timeout=2,
                      mail_sender="oar@example.org", log_level="DEBUG")
    monkeypatch.setattr(judas, "settings", lambda: values)
    return values


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, config: Settings) -> Iterator[Inbox]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(judas, "settings", lambda: Settings(**{**config.__dict__, "smtp_port": port}))
    yield inbox
    controller.stop()


@pytest.mark.parametrize(
    ("method", "tags"),
    [
        ("mail:a@b.org", ALL_TAGS),
        ("[END,ERROR]mail:a@b.org", ("END", "ERROR")),
        ("[RUNNING]exec:/bin/true", ("RUNNING",)),
        ("fax:123", None),
        ("mail", None),
    ],
)
def test_tags_of_a_notify_method(method: str, tags: tuple[str, ...] | None):
    assert judas.wanted_tags(method) == tags


def test_mail_has_oars_subject_and_the_configured_sender(smtp: Inbox):
    judas.notify_user("mail:user@example.org", "node1", "alice", 42, "calc", "END", "the job exited with code 0")
    (message,) = smtp.messages
    assert message["Subject"] == "*OAR* [END]: 42 (calc) on node1"
    assert (message["From"], message["To"]) == ("oar@example.org", "user@example.org")
    assert "exited with code 0" in message.get_payload()


def test_mail_to_an_unreachable_server_raises_for_the_caller_to_record(config: Settings):
    with pytest.raises(OSError):
        judas.notify_user("mail:user@example.org", "node1", "alice", 42, "calc", "END", "done")


def test_exec_gets_job_id_name_tag_and_comment(config: Settings, tmp_path: Path):
    record = tmp_path / "args"
    script = tmp_path / "notify.sh"
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {record}\n')
    script.chmod(0o755)
    me = pwd.getpwuid(os.geteuid()).pw_name
    judas.notify_user(f"exec:{script} first", "node1", me, 7, "calc", "RUNNING", "job started on node1")
    assert record.read_text().splitlines() == ["first", "7", "calc", "RUNNING", "job started on node1"]


def test_exec_is_bounded_in_time_and_leaves_nothing_behind(config: Settings, tmp_path: Path):
    pids = tmp_path / "pids"
    script = tmp_path / "slow.sh"
    script.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pids}\nwait\n")
    script.chmod(0o755)
    me = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(subprocess.TimeoutExpired):
        judas.notify_user(f"exec:{script}", "node1", me, 7, "calc", "END", "done")
    child = Path(f"/proc/{int(pids.read_text())}/stat")

    def gone() -> bool:
        try:
            return " Z " in child.read_text()
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 3  # SIGKILL is sent; the kernel takes a moment to finish the process
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()


def test_exec_sees_no_credentials_of_the_head(config: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OAR_DATABASE_URL", "postgresql://oar:secret@db/oar")
    record = tmp_path / "env"
    script = tmp_path / "env.sh"
    script.write_text(f"#!/bin/sh\nenv > {record}\n")
    script.chmod(0o755)
    me = pwd.getpwuid(os.geteuid()).pw_name
    judas.notify_user(f"exec:{script}", "node1", me, 7, "calc", "END", "done")
    assert "secret" not in record.read_text() and f"USER={me}" in record.read_text()


def test_a_failing_script_says_why(config: Settings):
    me = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(subprocess.CalledProcessError) as failure:
        judas.notify_user("exec:/bin/sh -c 'echo no mailbox >&2; exit 3'", "node1", me, 7, "calc", "END", "done")
    assert failure.value.returncode == 3 and failure.value.stderr == "no mailbox"


def test_exec_of_an_unknown_user_fails(config: Settings):
    if os.geteuid() != 0:
        pytest.skip("only root runs scripts as another user")
    with pytest.raises(KeyError):
        judas.notify_user("exec:/bin/true", "node1", "no-such-user-oar", 7, "calc", "END", "done")


def test_each_process_kind_logs_to_its_own_file_at_oars_levels(tmp_path: Path):
    code = (
        "import logging\n"
        "from oar_celery import logs\n"
        "logs.setup_logging('beat', to_stderr=False)\n"
        "logs.oar_debug('debug %s', 1); logs.oar_warn('warn %s', 2); logs.oar_error('error %s', 3)\n"
    )
    env = {**os.environ, "OAR_STATE_DIR": str(tmp_path), "OAR_LOG_LEVEL": "WARNING",
           "OAR_CONFIG_FILE": str(tmp_path / "absent.conf")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    text = (tmp_path / "log" / "oar-beat.log").read_text()
    assert "[WARNING]" in text and "warn 2" in text and "[ERROR]" in text and "error 3" in text
    assert "debug 1" not in text


def test_redirect_everything_sends_a_daemons_stdout_and_stderr_to_its_log(tmp_path: Path):
    code = (
        "import sys\n"
        "from oar_celery import logs\n"
        "logs.redirect_everything('head')\n"
        "print('to stdout', flush=True); print('to stderr', file=sys.stderr, flush=True)\n"
    )
    env = {**os.environ, "OAR_STATE_DIR": str(tmp_path), "OAR_CONFIG_FILE": str(tmp_path / "absent.conf")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert (done.stdout, done.stderr) == ("", "")
    assert (tmp_path / "log" / "oar-head.log").read_text().splitlines()[-2:] == ["to stdout", "to stderr"]


def test_notify_later_sends_no_message_for_jobs_that_asked_for_none(monkeypatch: pytest.MonkeyPatch):
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(judas.sender, "send", lambda messages: sent.extend(messages))
    judas.notify_later(1, None, "END", "done")
    judas.notify_later(2, "[ERROR]mail:a@b.org", "END", "done")
    judas.notify_later(3, "[END]mail:a@b.org", "END", "done")
    assert [message.kwargs["job_id"] for message in sent] == [3]


def test_notify_later_never_raises(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    def broken(_: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(judas.sender, "send", broken)
    with caplog.at_level(logging.ERROR, logger="oar"):
        judas.notify_later(3, "mail:a@b.org", "END", "done")
    assert "broker down" in caplog.text
