"""The client side of the job-shell service: a terminal or a command on a node of a job, over TLS.

Used by ``oarsub -I``, ``oarsub -C``, ``oarsh`` and ``oarcp``. The local
terminal goes raw, so that colours, Ctrl-C and Ctrl-D reach the remote
terminal as typed; a window resize is sent as it happens. The node's
certificate is checked against the cluster's CA and the node's own name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import ssl
import struct
import sys
import termios
import tty
from pathlib import Path
from typing import Any, BinaryIO

from oar_celery.client.errors import ClientError
from oar_celery.protocol import jobshell as wire
from oar_celery.protocol import tls

CONNECT_TIMEOUT = 10.0


class Outcome:
    """How a session ended: the remote status and why (``exited``, ``walltime``, ``killed``, ``lost``)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


def read_key_file(path: str) -> wire.JobKey:
    """A job key file (``oarsh -i``, ``OAR_JOB_KEY_FILE``, ``oarsub -e``); ClientError with one line."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        said = getattr(error, "strerror", None) or error
        raise ClientError(f"cannot read the job key file {path} ({said})") from None
    if not isinstance(data, dict) or "job_id" not in data or "key" not in data:
        raise ClientError(f"{path} is not a job key file")
    return data  # type: ignore[return-value]


def write_key_file(path: str, key: wire.JobKey) -> None:
    """Write a job key, readable by its owner only (the file is replaced)."""
    target = Path(path.replace("%jobid%", str(key["job_id"])))
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(key) + "\n")


def connect(keys_dir: Path, key: wire.JobKey, host: str) -> ssl.SSLSocket:
    """A TLS connection to ``host``'s job-shell service, its certificate checked."""
    nodes = key.get("nodes") or {}
    if host not in nodes:
        raise ClientError(f"no job-shell service is known for {host} (is it a node of job {key['job_id']}?)")
    address, port = nodes[host]
    try:
        context = tls.client_context(keys_dir, key.get("ca"))
    except OSError as error:
        raise ClientError(f"cannot read the cluster's CA in {tls.tls_dir(keys_dir)} ({error.strerror})") from None
    try:
        raw = socket.create_connection((address, int(port)), timeout=CONNECT_TIMEOUT)
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as error:
        raise ClientError(f"{host} is not who it claims to be ({error.verify_message})") from None
    except OSError as error:
        raise ClientError(f"cannot connect to {host} at {address}:{port} ({error.strerror or error})") from None


def open_session(keys_dir: Path, key: wire.JobKey, host: str, command: str | None, *, tty_mode: bool,
                 main: bool = False) -> ssl.SSLSocket:
    """Connect and set the session up; ClientError with the node's one line if it refuses."""
    sock = connect(keys_dir, key, host)
    hello: wire.Hello = {"job_id": int(key["job_id"]), "key": key["key"], "command": command, "tty": tty_mode,
                         "main": main, "ticket": key.get("ticket"), "ticket_mac": key.get("ticket_mac")}
    if tty_mode:
        rows, cols = _window()
        hello["term"], hello["rows"], hello["cols"] = os.environ.get("TERM") or "xterm", rows, cols
    try:
        wire.send_line(sock, hello)
        answer = wire.read_line(sock)
    except (OSError, ValueError, ConnectionError) as error:
        sock.close()
        raise ClientError(f"{host} closed the connection ({error})") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        sock.close()
        raise ClientError(str(answer.get("error") if isinstance(answer, dict) else answer))
    sock.settimeout(None)
    return sock


def _window() -> tuple[int, int]:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
        return rows or 24, cols or 80
    except OSError:
        return 24, 80


def relay(sock: ssl.SSLSocket, *, tty_mode: bool, stdin: BinaryIO | None = None,
          stdout: BinaryIO | None = None) -> Outcome:
    """Copy keyboard/standard input to the session and its output here, until it ends."""
    source = stdin if stdin is not None else sys.stdin.buffer
    sink = stdout if stdout is not None else sys.stdout.buffer
    saved = None
    if tty_mode and os.isatty(source.fileno()):
        saved = termios.tcgetattr(source.fileno())
        tty.setraw(source.fileno())
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous_wakeup = signal.set_wakeup_fd(wake_write) if tty_mode else -1
    previous_winch = signal.signal(signal.SIGWINCH, lambda *_: None) if tty_mode else None
    try:
        return _loop(sock, source, sink, wake_read, tty_mode=tty_mode)
    finally:
        if saved is not None:
            termios.tcsetattr(source.fileno(), termios.TCSADRAIN, saved)
        if tty_mode:
            signal.set_wakeup_fd(previous_wakeup)
            signal.signal(signal.SIGWINCH, previous_winch)
        os.close(wake_read)
        os.close(wake_write)


def _loop(sock: ssl.SSLSocket, source: BinaryIO, sink: BinaryIO, wake: int, *, tty_mode: bool) -> Outcome:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(source.fileno(), select.POLLIN)
    poller.register(wake, select.POLLIN)
    input_open = True
    while True:
        events = [(sock.fileno(), select.POLLIN)] if sock.pending() else poller.poll()
        for fd, _ in events:
            if fd == sock.fileno():
                outcome = _from_node(sock, sink)
                if outcome is not None:
                    return outcome
            elif fd == wake:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
                rows, cols = _window()
                wire.send_json_frame(sock, wire.WINDOW, {"rows": rows, "cols": cols})
            elif input_open:
                data = os.read(source.fileno(), 65536)
                if data:
                    wire.send_frame(sock, wire.DATA, data)
                else:
                    input_open = False
                    poller.unregister(source.fileno())
                    if not tty_mode:
                        wire.send_frame(sock, wire.EOF)


def _from_node(sock: ssl.SSLSocket, sink: BinaryIO) -> Outcome | None:
    try:
        kind, payload = wire.read_frame(sock)
    except (OSError, ConnectionError, ValueError):
        return Outcome(255, "lost")
    if kind == wire.DATA:
        sink.write(payload)
        sink.flush()
    elif kind == wire.STDERR:
        sys.stderr.buffer.write(payload)
        sys.stderr.buffer.flush()
    elif kind == wire.EXIT:
        end: dict[str, Any] = json.loads(payload)
        return Outcome(int(end.get("code") or 0), str(end.get("reason") or "exited"))
    return None
