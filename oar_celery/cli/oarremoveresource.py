"""oarremoveresource: delete resources for good, as OAR's oarremoveresource does.

Only ``Dead`` resources can go (``oarnodesetting -s Dead`` first), so that no
job can hold a resource that disappears; the head removes all or none.
"""

from __future__ import annotations

import sys

from oar_celery.cli.common import Parser, add_version, escape_controls, parser, positive_int, run

COMMAND = "oarremoveresource"


def build_parser() -> Parser:
    p = parser(COMMAND, "Remove Dead resources from the database.")
    add_version(p)
    p.add_argument("resource_ids", nargs="+", type=positive_int, metavar="ID", help="resource id (must be Dead)")
    return p


def _body(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from oar_celery.client import api

    for line in api.remove_resources(args.resource_ids):
        print(escape_controls(line))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(COMMAND, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
