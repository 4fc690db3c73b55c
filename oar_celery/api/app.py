"""The REST API's application: OAR3's routers, one-line errors, and the signing of head requests.

``create_app(settings)`` builds it; :mod:`.serve` runs it under uvicorn.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from oar_celery.api import API_VERSION, errors, frontend, jobs, resources, views
from oar_celery.config import Settings, settings


class ConfigurationError(Exception):
    """The API cannot run safely with these settings."""


def signer(config: Settings) -> Any:
    """How this process proves its users to the head: with the cluster key when it has one.

    Without a key the head believes the user a request names. An authd socket
    without the key would prove the API's own user (an admin) for everybody:
    refused.
    """
    if not config.auth_key_file:
        if config.auth_socket:
            raise ConfigurationError("with OAR_AUTH_SOCKET set the API signs its users' requests itself: "
                                     "it needs OAR_AUTH_KEY_FILE (readable by the API's user)")
        return None
    from oar_celery.protocol.auth import read_key, request_digest, sign

    key = read_key(config.auth_key_file)

    def sign_for(user: str, request: dict[str, Any]) -> dict[str, Any]:
        return dict(sign(key, user, request_digest(request)))

    return sign_for


def create_app(config: Settings | None = None, *, root_path: str = "") -> FastAPI:
    """The API for these settings (default: this process's)."""
    from oar_celery.client import api as client_api

    config = config or settings()
    client_api.sign_requests_with(signer(config))
    app = FastAPI(
        title="oar-celery REST API", version=API_VERSION, root_path=root_path,
        description="OAR3's REST API over oar-celery: jobs, resources, tokens; a Gantt chart (/drawgantt) and "
                    "a node grid (/monika). Errors are one line: {\"detail\": \"...\"}.",
    )
    app.state.config = config
    errors.install(app)
    for router in (frontend.router, jobs.router, resources.router, views.router):
        app.include_router(router)
    return app
