"""``python -m bench [latency|throughput|history|wide|scheduler|startup|memory|api|interactive|signing|node|all]
[--quick]
[--nodes N] [--no-write]``.

Each benchmark prints a markdown table and appends it, with the command, the
date and the machine, to ``BENCHMARKS.md`` (``--no-write``: printed only).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("latency", "throughput", "history", "wide", "scheduler", "startup", "memory", "api", "interactive",
              "signing", "node")

#: Options followed by a value (``--nodes 1000``).
VALUED = ("--nodes",)


def run_one(name: str, args: list[str]) -> None:
    write = "--no-write" not in args
    module = importlib.import_module(f"bench.{'scheduler_db' if name == 'scheduler' else name}")
    module.main([a for a in args if a != "--no-write"], write=write)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    values = {i + 1 for i, a in enumerate(args) if a in VALUED}
    names = [a for i, a in enumerate(args) if not a.startswith("--") and i not in values] or ["all"]
    flags = [a for i, a in enumerate(args) if a.startswith("--") or i in values]
    unknown = [n for n in names if n not in (*BENCHMARKS, "all")]
    if unknown:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    for name in BENCHMARKS if "all" in names else names:
        run_one(name, flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
