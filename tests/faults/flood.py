"""Submit many jobs at once through the client API; print every accepted id, one per line.

Run as a subprocess with the cluster's environment, so that it reads the
same settings as ``oarsub``. A submission that fails (head killed, broker
down) is printed on stderr and not counted: only ids the head answered with
were accepted.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from oar_celery.client import api
from oar_celery.client.errors import ClientError


def submit_one(command: str, resources: str) -> int | None:
    try:
        return api.submit({"command": command, "resources": [resources], "directory": "/tmp"})[0]
    except ClientError as error:
        print(f"refused: {error}", file=sys.stderr, flush=True)
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int)
    parser.add_argument("command")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--resources", default="/core=1,walltime=0:05:00")
    args = parser.parse_args()
    with ThreadPoolExecutor(args.threads) as pool:
        futures = [pool.submit(submit_one, args.command, args.resources) for _ in range(args.count)]
        for future in futures:
            job_id = future.result()
            if job_id is not None:
                print(job_id, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
