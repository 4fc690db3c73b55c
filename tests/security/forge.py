"""An ordinary user with the broker's URL, forging what a node or the head would send.

usage: forge.py USER ACTION_JSON   (started as root with the cluster's environment; drops to USER first)

Actions (``op``): ``task`` pushes an ``oar.node.*`` task (``task``, ``host``, ``kwargs``), unsigned or
signed with a key of the user's own making (``fake_key``), or a node's task for the head (``queue``);
``reports`` queues a report batch for Almighty as a node does, unsigned or signed with a key file the
user can read (``key_file``, ``signer``: a stolen node key); ``raw`` pushes bytes captured from the
broker (``queue``, ``file``).
Everything is built here, with the project's public message code, as any user could.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import redis

from oar_celery.protocol.bus import queue_reports
from oar_celery.protocol.signing import HEAD, REPORT, sign, task_subject
from oar_celery.protocol.wire import push
from tests.security.as_user import become


def forge_task(client: redis.Redis, action: dict) -> None:  # type: ignore[type-arg]
    kwargs = dict(action["kwargs"])
    if action.get("fake_key"):
        kwargs["oar_sig"] = sign(b"f" * 64, HEAD, task_subject(action["task"], action["host"]), kwargs)
    push(client, action["task"], kwargs, action.get("queue") or f"oar.node.{action['host']}")


def forge_reports(client: redis.Redis, action: dict) -> None:  # type: ignore[type-arg]
    reports = action["reports"]
    if action.get("key_file"):
        key = Path(action["key_file"]).read_bytes().strip()
        reports = [{**r, "sig": sign(key, action["signer"], REPORT, r)} for r in reports]
    queue_reports(reports, client=client)


def main() -> int:
    user, raw = sys.argv[1:]
    action = json.loads(raw)
    client = redis.Redis.from_url(action["broker"])
    client.ping()  # connect (and load what connecting needs) before root is given up
    become(user)
    if action["op"] == "task":
        forge_task(client, action)
    elif action["op"] == "reports":
        forge_reports(client, action)
    else:
        client.lpush(action["queue"], Path(action["file"]).read_bytes())
    print("sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
