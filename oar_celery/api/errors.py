"""Every failure of the REST API is one JSON object with one line: ``{"detail": "..."}``.

The status codes are OAR3's (FastAPI's): 422 for a parameter of the wrong
kind, 404 for what does not exist, 401 for a bad token, 403 for an anonymous
write, 400 for a request the head refuses; 503 when the database or the head
cannot be reached, with the client's own line saying which.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from oar_celery.client.errors import ClientError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 200, with its one line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = one_line(detail)


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "error"


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": one_line(detail)}, status_code=status, headers=headers)


def _validation_line(error: RequestValidationError) -> str:
    """The first problem of a request, as ``query parameter 'limit': Input should be a valid integer``."""
    problems = []
    for item in error.errors():
        where = [str(part) for part in item.get("loc", ())]
        kind = {"query": "query parameter", "path": "path parameter", "body": "body field"}.get(where[0], where[0]) \
            if where else "request"
        name = ".".join(where[1:])
        problems.append(f"{kind} '{name}': {item.get('msg', 'invalid')}" if name else f"{kind}: {item.get('msg')}")
    return "; ".join(problems) or "invalid request"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path.removeprefix(request.scope.get("root_path", ""))):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Answer every error with one JSON line."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return error_response(error.status, error.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_line(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(error.status_code, str(error.detail), headers or None)

    @app.exception_handler(ClientError)
    async def unreachable(_: Request, error: ClientError) -> JSONResponse:
        return error_response(503, str(error))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("API request failed")
        return error_response(500, f"internal error: {type(error).__name__}")
