"""``oar-celery api``: the REST API and web views under uvicorn, on TCP or on a Unix socket."""

from __future__ import annotations

import logging
from typing import Any

from oar_celery.config import Settings

logger = logging.getLogger(__name__)


def serve(config: Settings, *, port: int | None = None, address: str | None = None, socket: str | None = None,
          root_path: str = "") -> None:
    """Serve until stopped (SIGTERM or Ctrl-C end it cleanly)."""
    import uvicorn

    from oar_celery.api.app import create_app

    app = create_app(config, root_path=root_path)
    uds = socket if socket is not None else config.api_socket
    options: dict[str, Any] = (
        {"uds": uds} if uds else {"host": address or config.api_address, "port": port or config.api_port}
    )
    logger.info("REST API on %s", uds or f"http://{options['host']}:{options['port']}/")
    uvicorn.run(app, log_level=config.log_level.lower(), access_log=False, server_header=False,
                proxy_headers=False, **options)
