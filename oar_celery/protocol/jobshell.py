"""The job-shell protocol: how ``oarsub -I``, ``oarsub -C`` and ``oarsh`` talk to a node's service.

One TLS connection per shell. The client sends one JSON line, the
:class:`Hello` (which job, its key, what to run, the terminal), the node one
JSON line back (``{"ok": true}`` or ``{"error": "one line"}``); then both send
frames: a type byte, a 4-byte big-endian length, the payload. Only the set-up
of a job ever crosses the broker; what the user types goes from the client to
the node directly.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, NotRequired, TypedDict

#: Terminal or standard output bytes (node → client), keyboard or standard input bytes (client → node).
DATA = b"D"
#: Standard error bytes of a command without a terminal (node → client).
STDERR = b"E"
#: The client's standard input is at its end (commands without a terminal).
EOF = b"I"
#: The client's window changed: ``{"rows": r, "cols": c}``.
WINDOW = b"W"
#: The session is over: ``{"code": n, "reason": "exited" | "walltime" | "killed" | "ended"}`` (node → client).
EXIT = b"X"

_HEADER = struct.Struct(">cI")
#: The largest frame a peer accepts.
MAX_FRAME = 1 << 20


class Hello(TypedDict):
    """The first line of a connection: which job, the proof, what to run."""

    job_id: int
    key: str
    #: The command to run (``oarsh host cmd``); None: the user's shell.
    command: str | None
    tty: bool
    term: NotRequired[str]
    rows: NotRequired[int]
    cols: NotRequired[int]
    #: ``oarsub -I``: this shell is the job; its end ends the job, the loss of its client kills it.
    main: NotRequired[bool]
    #: The job's sealed ticket, for a node of the job other than its first one.
    ticket: NotRequired[dict[str, Any] | None]
    ticket_mac: NotRequired[str | None]
    #: A node of the job asks its first node whether the job still runs: the answer, and no shell.
    probe: NotRequired[bool]


class JobKey(TypedDict):
    """A job key file (OAR3's ``OAR_JOB_KEY_FILE``, ``oarsub -e``): what lets its holder into the job."""

    job_id: int
    key: str
    #: The job's first node, and every node's job-shell service (``host`` → ``[address, port]``).
    first_host: NotRequired[str]
    nodes: NotRequired[dict[str, list[Any]]]
    ticket: NotRequired[dict[str, Any] | None]
    ticket_mac: NotRequired[str | None]
    #: The cluster's CA certificate (PEM): a job's processes check their nodes without the keys directory.
    ca: NotRequired[str]


def send_line(sock: socket.socket, data: Any) -> None:
    sock.sendall(json.dumps(data).encode() + b"\n")


def read_line(sock: socket.socket, limit: int = 1 << 16) -> Any:
    """One JSON line, read byte-exact so that the frames after it stay in the socket."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("the connection closed during the set-up")
        data += chunk
        if len(data) > limit:
            raise ValueError("set-up line too long")
    return json.loads(data)


def send_frame(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def send_json_frame(sock: socket.socket, kind: bytes, data: Any) -> None:
    send_frame(sock, kind, json.dumps(data).encode())


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket) -> tuple[bytes, bytes]:
    """The next frame's type and payload; ConnectionError at the end of the connection."""
    kind, size = _HEADER.unpack(_exactly(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes refused")
    return kind, _exactly(sock, size) if size else b""
