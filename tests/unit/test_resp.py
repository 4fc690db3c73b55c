"""The user commands' small Redis client: which URLs it takes, and how it reads replies."""

from __future__ import annotations

import socket
import threading

import pytest

from oar_celery.client import resp


@pytest.mark.parametrize(
    ("url", "ours"),
    [
        ("redis://localhost:6379/0", True),
        ("redis://127.0.0.1/13", True),
        ("redis://localhost", True),
        ("unix:///run/redis.sock?db=2", True),
        ("redis://:secret@localhost:6379/0", False),
        ("redis://user:secret@localhost/0", False),
        ("rediss://localhost:6380/0", False),
        ("redis://localhost/0?socket_timeout=3", False),
        ("sentinel://localhost:26379", False),
    ],
)
def test_credentials_tls_and_options_are_left_to_redis_py(url: str, ours: bool) -> None:
    assert resp.supported(url) is ours


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert resp.encode("LPUSH", "q", b"x\r\ny", 3) == b"*4\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$4\r\nx\r\ny\r\n$1\r\n3\r\n"


def test_replies_of_every_kind_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    server, client = socket.socketpair()
    monkeypatch.setattr(resp, "_address", lambda url: (socket.AF_UNIX, "", 0))
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: None)
    connection = resp.Connection.__new__(resp.Connection)
    connection.sock, connection.timeout, connection.buffer = client, 5.0, b""
    replies = b"+OK\r\n:7\r\n$-1\r\n$5\r\nhe\r\nl\r\n*3\r\n$7\r\nmessage\r\n$1\r\nk\r\n$2\r\nhi\r\n-ERR no\r\n"
    threading.Thread(target=lambda: [server.sendall(replies[i:i + 3]) for i in range(0, len(replies), 3)]).start()
    assert connection.reply() == b"OK"
    assert connection.reply() == 7
    assert connection.reply() is None
    assert connection.reply() == b"he\r\nl"
    assert connection.reply() == [b"message", b"k", b"hi"]
    with pytest.raises(resp.RespError, match="ERR no"):
        connection.reply()
    assert connection.message(0.05) is None
    server.close()
    client.close()


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:6379/5", ("127.0.0.1", 6379, 5)),
        ("redis://localhost", ("localhost", 6379, 0)),
        ("redis://[::1]:6380/2", ("::1", 6380, 2)),
        ("REDIS://h/1#fragment", ("h", 6379, 1)),
        ("unix:///run/redis.sock?db=3", ("/run/redis.sock", None, 3)),
        ("redis://:secret@h/1", None),
        ("redis://user:secret@h:1/2", None),
        ("redis://h/0?password=x", None),
        ("redis://h:abc/0", None),
        ("redis://h/abc", None),
        ("rediss://h/0", None),
        ("unix:///run/redis.sock?db=x", None),
        ("unix:///run/redis.sock?timeout=1", None),
        ("unix:///run/my%20redis.sock", None),
    ],
)
def test_urls_are_read_as_redis_py_reads_them_and_the_rest_left_to_it(url: str, address: tuple | None) -> None:
    if address is None:
        assert not resp.supported(url)
        return
    assert resp.supported(url)
    host, port, db = address
    family, where, number = resp._address(url)
    assert where == ((host, port) if port else host) and number == db
