"""The few Redis commands a user command needs, spoken over a plain socket (RESP2).

``import redis`` costs ``oarsub`` about 57 ms, a third of its whole run. A
submission needs only ``SELECT``, ``LPUSH``, ``GET``, ``DEL`` and one
``SUBSCRIBE``: this module speaks exactly those, on ``redis://host:port/db``
and ``unix://path?db=N`` URLs without credentials. Anything else (``rediss``,
a user name or password, other options) is left to redis-py, which
:func:`supported` tells the caller to use.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class RespError(OSError):
    """The server answered with an error, or the connection broke."""


def supported(url: str) -> bool:
    """Whether this module can talk to ``url`` (plain TCP or Unix socket, no credentials, no options)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return False
    if parts.scheme == "redis":
        return not parts.query and (parts.path.strip("/") or "0").isdigit()
    if parts.scheme == "unix":
        options = parse_qs(parts.query)
        return set(options) <= {"db"} and all(v.isdigit() for v in options.get("db", ["0"]))
    return False


def _address(url: str) -> tuple[int, Any, int]:
    """(socket family, address, db) of a supported URL."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return socket.AF_UNIX, unquote(parts.path), int(parse_qs(parts.query).get("db", ["0"])[0])
    return socket.AF_INET, (parts.hostname or "localhost", parts.port or 6379), int(parts.path.strip("/") or 0)


def encode(*args: str | bytes | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Connection:
    """One connection: send commands, read replies (with a deadline for pub/sub messages)."""

    def __init__(self, url: str, *, connect_timeout: float = 3.0, timeout: float = 10.0) -> None:
        family, address, db = _address(url)
        if family == socket.AF_UNIX:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(connect_timeout)
            self.sock.connect(address)
        else:
            host, port = address
            # an ASCII host as bytes: a str one goes through the idna codec, whose import costs a command ~1 ms
            self.sock = socket.create_connection((host.encode() if host.isascii() else host, port),
                                                 timeout=connect_timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buffer = b""
        if db:
            self.command("SELECT", db)

    def close(self) -> None:
        self.sock.close()

    def command(self, *args: str | bytes | int) -> Any:
        self.sock.sendall(encode(*args))
        return self.reply()

    def reply(self) -> Any:
        """Read one reply; errors become :class:`RespError`."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise RespError(f"unexpected reply {line[:40]!r}")

    def message(self, timeout: float) -> Any:
        """The next pushed message within ``timeout`` seconds, or None."""
        if not self.buffer:
            self.sock.settimeout(max(timeout, 0.001))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                raise RespError("connection closed by the server")
            self.buffer += chunk
        return self.reply()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RespError("connection closed by the server")
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


class Client:
    """The command side, shaped like the part of ``redis.Redis`` that :mod:`wire` uses."""

    def __init__(self, url: str, timeout: float) -> None:
        self.connection = Connection(url, timeout=timeout)

    def lpush(self, key: str, value: bytes) -> int:
        return int(self.connection.command("LPUSH", key, value))

    def get(self, key: str) -> bytes | None:
        return self.connection.command("GET", key)

    def delete(self, key: str) -> int:
        return int(self.connection.command("DEL", key))

    def close(self) -> None:
        self.connection.close()


class PubSub:
    """The subscriber side, shaped like the part of ``redis.client.PubSub`` that :mod:`wire` uses."""

    def __init__(self, url: str, timeout: float) -> None:
        self.connection = Connection(url, timeout=timeout)

    def subscribe(self, channel: str) -> None:
        self.connection.command("SUBSCRIBE", channel)

    def get_message(self, timeout: float) -> dict[str, Any] | None:
        """A published message as ``{"data": ...}``; None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            pushed = self.connection.message(max(0.0, deadline - time.monotonic()))
            if pushed is None:
                return None
            if isinstance(pushed, list) and pushed and pushed[0] == b"message":
                return {"data": pushed[2]}
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        self.connection.close()
