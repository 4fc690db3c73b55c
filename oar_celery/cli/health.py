"""``oar-celery status`` and ``oar-celery doctor``: is each process taking work, is the deployment sound.

A live process is not enough (design §6: a worker can run on and never
consume again), so ``status`` answers as Finaud does: a node consumes if it
answered the last ping Finaud sent through its own queue, the head if it ran
an Almighty cycle within a few of beat's ticks. Process ids come from the local
cluster's ``cluster.json`` when there is one; on a real cluster the broker
alone tells which nodes and head take work.

``doctor`` checks what a new deployment gets wrong: a broker that does not
answer or that anybody may use, a key users can read, a database whose schema
is older or newer than the package's, clocks that disagree between machines.
Each check is one line, ``ok``, ``WARN`` or ``FAIL``; any ``FAIL`` makes the
exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oar_celery.config import Settings, mask
from oar_celery.protocol.names import Key
from oar_celery.protocol.signing import Keyring, head_keyring

#: Seconds of clock difference between a worker and this machine that doctor reports.
MAX_SKEW = 1.0


@dataclass
class Row:
    """One process as ``status`` shows it; None where it cannot tell."""

    name: str
    pid: int | None = None
    alive: bool | None = None
    consuming: bool | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.alive is not False and self.consuming is not False

    def line(self) -> str:
        alive = {True: "up", False: "DOWN", None: "-"}[self.alive]
        consuming = {True: "yes", False: "NO", None: "-"}[self.consuming]
        return f"{self.name:<12} {self.pid or '-':<8} {alive:<5} {consuming:<9} {self.detail}".rstrip()


#: The local cluster's processes that are not compute nodes (cluster.json names every other by its host).
NOT_NODES = ("head", "beat", "flower", "authd", "redis")
HEADER = f"{'process':<12} {'pid':<8} {'alive':<5} {'consuming':<9} detail"


def broker_client(config: Settings) -> Any:
    import redis

    return redis.Redis.from_url(config.broker_url, socket_connect_timeout=3, socket_timeout=5)


def status_rows(config: Settings) -> list[Row]:
    """Every known process: the local cluster's from its pid file, and every node Finaud pings."""
    from oar_celery import cluster

    path = cluster.pid_file(config)
    pids = {e["name"]: e["pid"] for e in json.loads(path.read_text())} if path.exists() else {}
    client = broker_client(config)
    sent = {k.decode(): json.loads(v) for k, v in client.hgetall(Key.FINAUD_SENT).items()}
    answered = {k.decode(): v.decode() for k, v in client.hgetall(Key.FINAUD_ANSWERED).items()}
    answered.update(waiting_answers(client.lrange(Key.FINAUD_ANSWERS, 0, -1), head_keyring(), config.signature_window))
    missed = {k.decode() for k in client.hkeys(Key.FINAUD_MISSED)}
    last_cycle = client.lindex(Key.CYCLES, 0)
    now = time.time()
    rows = [_head_row(config, json.loads(last_cycle) if last_cycle else None, now)]
    rows += [Row(name) for name in pids if name in NOT_NODES and name != "head"]
    hosts = sorted({*sent, *(name for name in pids if name not in NOT_NODES)})
    rows += [_node_row(config, host, sent.get(host), answered.get(host), host in missed, now) for host in hosts]
    for row in rows:
        if row.name in pids:
            row.pid = pids[row.name]
            row.alive = cluster.alive(row.pid)
    return rows


def waiting_answers(raw: list[bytes], keys: Keyring, window: float) -> dict[str, str]:
    """The tokens of the answers the nodes pushed that Finaud's next round has still to take (host → token).

    A node answers within milliseconds but Finaud takes the answers once a
    round; counted here when their signature holds, a node is not shown
    unanswered for the rest of the round. The list is newest first: the
    newest answer of a node is the one kept.
    """
    from oar_celery.head.finaud import checked_answers

    checked, _ = checked_answers(raw[::-1], keys, window, time.time())
    return {answer["host"]: answer["token"] for answer, _ in checked}


def _head_row(config: Settings, cycle: dict[str, Any] | None, now: float) -> Row:
    """The head consumes if it ran a cycle within three of beat's ticks."""
    if cycle is None:
        return Row("head", consuming=None, detail="no Almighty cycle recorded yet")
    age = now - float(cycle["end"])
    within = 3 * config.almighty_tick + 5
    return Row("head", consuming=age <= within, detail=f"last Almighty cycle {age:.1f} s ago"
               + ("" if age <= within else f" (beat ticks every {config.almighty_tick:g} s: is beat running?)"))


def _node_row(config: Settings, host: str, ping: dict[str, Any] | None, answer: str | None, missed: bool,
              now: float) -> Row:
    """Finaud's answer: the node consumes if it answered the last ping sent through its queue.

    While a ping waits for its answer, Finaud's last judgement stands: a node
    that missed a ping takes no work until it answers one.
    """
    if ping is None:
        return Row(host, detail="not pinged by Finaud yet")
    age = now - float(ping["at"])
    if answer == ping["token"]:
        if age > 2 * config.finaud_period + config.finaud_timeout + 5:  # no ping since: Finaud is not running
            return Row(host, detail=f"answered Finaud's ping of {age:.1f} s ago; none sent since (is the head up?)")
        return Row(host, consuming=True, detail=f"answered Finaud's ping of {age:.1f} s ago")
    if age > config.finaud_timeout:
        return Row(host, consuming=False, detail=f"Finaud's ping of {age:.1f} s ago never answered")
    if missed:
        return Row(host, consuming=False, detail=f"missed Finaud's last ping; the one of {age:.1f} s ago waits")
    return Row(host, detail=f"Finaud's ping of {age:.1f} s ago not answered yet")


def status(config: Settings, process: str | None = None) -> int:
    """Print the table (or one process's line); 0 if every process shown is alive and consuming."""
    rows = status_rows(config)
    if all(row.pid is None and row.consuming is None for row in rows):
        print(f"no cluster is running (no process in {config.state_dir}/cluster.json, no head cycle or node "
              "answer on the broker)")
        return 1
    if process:
        rows = [row for row in rows if row.name == process]
        if not rows:
            print(f"oar-celery: error: no process named {process} (see oar-celery status)")
            return 1
    print(HEADER)
    for row in rows:
        print(row.line())
    return 0 if all(row.healthy for row in rows) else 1


# doctor ----------------------------------------------------------------------------------------
@dataclass
class Check:
    """One line of ``doctor``."""

    level: str  # "ok", "WARN" or "FAIL"
    what: str

    def line(self) -> str:
        return f"{self.level:<4}  {self.what}"


def doctor(config: Settings, *, listen: float = 3.0) -> int:
    """Run every check; print one line each; 1 if one failed."""
    checks = check_broker(config)
    broker_ok = checks[0].level == "ok"
    checks += check_keys(config)
    checks += check_signing_keys(config)
    checks += check_database(config)
    if broker_ok:
        checks += check_clocks(config, listen)
    for check in checks:
        print(check.line())
    failed = sum(check.level == "FAIL" for check in checks)
    warned = sum(check.level == "WARN" for check in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return 1 if failed else 0


def check_broker(config: Settings) -> list[Check]:
    """The broker answers; it asks for a password; which ACL user this process is."""
    import redis

    client = broker_client(config)
    url = mask(config.broker_url)
    try:
        client.ping()
    except redis.RedisError as error:
        return [Check("FAIL", f"broker {url} does not answer: {error}")]
    checks = [Check("ok", f"broker {url} answers")]
    try:
        user = client.execute_command("ACL", "WHOAMI")
        user = user.decode() if isinstance(user, bytes) else str(user)
    except redis.RedisError:
        user = "default"
    address = client.connection_pool.connection_kwargs
    if "host" not in address:  # a Unix socket: its file's mode says who may use it
        return [*checks, Check("ok", f"the broker is a Unix socket (this process is ACL user {user})")]
    try:
        redis.Redis(host=address["host"], port=address.get("port", 6379), socket_connect_timeout=3).ping()
        if _anonymous_submits_only(client):
            checks.append(Check("ok", f"connections without a password may only submit (ACL roles; this process "
                                      f"is ACL user {user})"))
        else:
            checks.append(Check("WARN", "the broker answers without a password: anybody who reaches it may "
                                        "write any queue (oar-celery acl prints an ACL file of roles)"))
    except redis.RedisError:
        checks.append(Check("ok", f"the broker asks for a password (this process is ACL user {user})"))
    return checks


def _anonymous_submits_only(client: Any) -> bool:
    """Whether the broker's ACL keeps password-less connections off the nodes' queues (Redis's own dry run)."""
    import redis

    from oar_celery.protocol.names import node_queue

    try:
        answer = client.execute_command("ACL", "DRYRUN", "default", "LPUSH", node_queue("doctor"), "x")
    except redis.RedisError:  # no ACL (Redis < 7), or not allowed to ask: assume the worst
        return False
    return answer not in (b"OK", "OK")


def check_keys(config: Settings) -> list[Check]:
    """The key that proves users: present, long enough, readable by its owner only."""
    if not config.auth_key_file:
        return [Check("WARN", "no OAR_AUTH_KEY_FILE: the head believes the user a request names")]
    path = Path(config.auth_key_file)
    try:
        mode = path.stat().st_mode & 0o777
        size = len(path.read_bytes().strip())
    except OSError as error:
        return [Check("FAIL", f"auth key {path}: {error.strerror}")]
    if mode & 0o077:
        return [Check("FAIL", f"auth key {path} is readable by others (mode {mode:o}): chmod 600 it")]
    if size < 32:
        return [Check("FAIL", f"auth key {path} is too short ({size} bytes, 32 or more expected)")]
    return [Check("ok", f"auth key {path}: mode {mode:o}, {size} bytes")]


def check_signing_keys(config: Settings) -> list[Check]:
    """The keys of signed node messages: present, and readable by their owner only."""
    from oar_celery.protocol.signing import signing_on

    if not signing_on(config):
        return [Check("WARN", "OAR_SIGNING=off: anybody who reaches the broker can make a node act")]
    nodes = config.keys / "nodes"
    if not nodes.is_dir():
        return [Check("WARN", f"no {nodes}: node messages are not signed (oar-celery keys)")]
    try:
        paths = [config.keys, nodes, *config.keys.glob("*.key"), *nodes.glob("*.key")]
        open_ones = [path for path in paths if path.stat().st_mode & 0o077]
    except OSError as error:
        return [Check("FAIL", f"signing keys in {config.keys}: {error.strerror}")]
    if open_ones:
        return [Check("FAIL", f"{open_ones[0]} is open to others: chmod go-rwx it")]
    return [Check("ok", f"signing keys in {config.keys}: {len(paths) - 2} key(s), private to their owner")]


def check_database(config: Settings) -> list[Check]:
    """The database answers and its schema is this package's (nodes have none: nothing to check)."""
    if not config.database_url and not Path(config.database.removeprefix("sqlite:///")).exists():
        return [Check("WARN", "no OAR_DATABASE_URL and no SQLite database: right on a compute node only")]
    from oar_celery.db.schema import schema_versions

    url = mask(config.database)
    try:
        current, newest = schema_versions()
    except Exception as error:  # noqa: BLE001 - any failure is the line's answer
        return [Check("FAIL", f"database {url} does not answer: {str(error).splitlines()[0]}")]
    if current is None:
        return [Check("FAIL", f"database {url} has no schema: run 'oar-celery db init'")]
    if current != newest:
        return [Check("FAIL", f"database {url} is at schema {current}, this package expects {newest}: "
                              "run 'oar-celery db init' with the newest package")]
    return [Check("ok", f"database {url} answers, schema {current} (the newest)")]


def check_clocks(config: Settings, listen: float) -> list[Check]:
    """Each worker's clock against this machine's, from the heartbeats workers send every 2 s."""
    from oar_celery.celery_app import app

    skews: dict[str, float] = {}
    deadline = time.monotonic() + listen

    def event(received: dict[str, Any]) -> None:
        if received.get("type") == "worker-heartbeat":
            skews[received["hostname"]] = float(received["timestamp"]) - time.time()
        receiver.should_stop = time.monotonic() >= deadline

    broker_skew = _broker_skew(config)
    checks = [Check("ok" if abs(broker_skew) <= MAX_SKEW else "WARN",
                    f"clock of the broker's machine: {broker_skew:+.2f} s from this one")]
    with app.connection() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": event})
        # asks every worker for a heartbeat at once; stops at the first event after the deadline
        with contextlib.suppress(TimeoutError, OSError):
            receiver.capture(limit=None, timeout=listen, wakeup=True)
    if not skews:
        return [*checks, Check("WARN", f"no worker heartbeat in {listen:g} s: is any worker running?")]
    for worker, skew in sorted(skews.items()):
        ok = abs(skew) <= MAX_SKEW
        checks.append(Check("ok" if ok else "FAIL",
                            f"clock of {worker}: {skew:+.2f} s from this one" + ("" if ok else " (run NTP)")))
    return checks


def _broker_skew(config: Settings) -> float:
    seconds, micro = broker_client(config).time()
    return float(seconds) + micro / 1e6 - time.time()
