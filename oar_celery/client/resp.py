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


class RespError(OSError):
    """The server answered with an error, or the connection broke."""


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme, authority, path, query) of a URL, cut where :func:`urllib.parse.urlsplit` cuts them.

    By hand: :mod:`urllib.parse` (with :mod:`ipaddress`) costs a command more than its own
    request; any URL this module does not read fully (credentials, escapes) goes to redis-py.
    """
    scheme, _, rest = url.partition("://")
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    return scheme.lower(), authority, slash + path, query


def _unix_db(query: str) -> str | None:
    """The ``db`` of a ``unix://`` URL's query ("0" if none); None for any other option."""
    db = "0"
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if name != "db" or not value.isdigit():
            return None
        db = value
    return db


def supported(url: str) -> bool:
    """Whether this module can talk to ``url`` (plain TCP or Unix socket, no credentials, no options)."""
    if "://" not in url or "%" in url:
        return False
    scheme, authority, path, query = _split(url)
    if "@" in authority:
        return False
    if scheme == "redis":
        return not query and (path.strip("/") or "0").isdigit() and _host_port(authority) is not None
    if scheme == "unix":
        return not authority and bool(path) and _unix_db(query) is not None
    return False


def _host_port(authority: str) -> tuple[str, int] | None:
    """``host[:port]`` (``[v6]:port`` too), the defaults filled in; None if the port is no number."""
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if port and not port.isdigit():
        return None
    return host or "localhost", int(port or 6379)


def _address(url: str) -> tuple[int, Any, int]:
    """(socket family, address, db) of a supported URL."""
    scheme, authority, path, query = _split(url)
    if scheme == "unix":
        return socket.AF_UNIX, path, int(_unix_db(query) or 0)
    address = _host_port(authority)
    assert address is not None  # supported() said so
    return socket.AF_INET, address, int(path.strip("/") or 0)


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
