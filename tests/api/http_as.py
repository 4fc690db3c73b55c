"""Run HTTP calls as another unix account, from a chosen source address; print their answers as JSON.

usage: http_as.py USER BASE_URL SOURCE_ADDRESS CALLS_JSON

Started as root: loads httpx, then gives up root for the account's uid, gid and
groups, and only then calls. A call may also try to read a file (``"read"``),
to show what the account can reach on the API's machine.
"""

from __future__ import annotations

import json
import os
import pwd
import sys

import httpx


def become(user: str) -> None:
    entry = pwd.getpwnam(user)
    os.setgroups(os.getgrouplist(user, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def main() -> int:
    user, base, source, calls = sys.argv[1:]
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base, transport=transport, timeout=60) as client:
        client.get("/version")  # every lazy import done as root
        become(user)
        answers = []
        for call in json.loads(calls):
            if "read" in call:
                try:
                    with open(call["read"]) as handle:
                        answers.append({"read": handle.read()})
                except OSError as error:
                    answers.append({"error": type(error).__name__})
                continue
            response = client.request(call["method"], call["path"], headers=call.get("headers"),
                                      json=call.get("json"))
            answers.append({"status": response.status_code, "body": response.json()})
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
