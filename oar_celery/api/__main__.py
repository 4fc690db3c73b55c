"""``python -m oar_celery.api``: what ``oar-celery api`` runs (serve, or print a token for a user)."""

from __future__ import annotations

import argparse
import sys

from oar_celery.config import settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oar-celery api", description="The REST API and the web views.")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default OAR_API_PORT)")
    parser.add_argument("--address", default=None, help="address to listen on (default OAR_API_ADDRESS)")
    parser.add_argument("--socket", default=None, help="serve on this Unix socket instead (OAR_API_SOCKET)")
    parser.add_argument("--root-path", default="", help="the prefix the front web server serves the API at")
    sub = parser.add_subparsers(dest="action")
    token = sub.add_parser("token", help="print an API token for a user (needs OAR_API_SECRET_KEY)")
    token.add_argument("user")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = settings()
    if args.action == "token":
        from oar_celery.api.auth import create_token
        from oar_celery.api.errors import ApiError

        try:
            print(f"OAR_API_TOKEN={create_token(args.user, config)}")
        except ApiError as error:
            print(f"oar-celery: error: {error.detail}", file=sys.stderr)
            return 1
        return 0
    from oar_celery.api.app import ConfigurationError
    from oar_celery.api.serve import serve
    from oar_celery.logs import setup_logging

    setup_logging("api")
    try:
        serve(config, port=args.port, address=args.address, socket=args.socket, root_path=args.root_path)
    except ConfigurationError as error:
        print(f"oar-celery: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
