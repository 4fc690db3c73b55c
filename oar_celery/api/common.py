"""What every router of the REST API shares: its settings, answers, pages and links."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from oar_celery.api.errors import ApiError
from oar_celery.api.schemas import Error
from oar_celery.config import Settings

#: The answers every listing and action may give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "model": Error} for code, text in (
        (400, "A body that cannot be read, or a request the head refuses"),
        (401, "Bad or revoked token"),
        (404, "No such object, or a page past the end"),
        (422, "A parameter of the wrong kind"),
        (503, "The database or the head cannot be reached"),
    )
}


def config(request: Request) -> Settings:
    settings: Settings = request.app.state.config
    return settings


@contextmanager
def reading() -> Iterator[Session]:
    """A read-only session, as ``oarstat``'s (a database down is one line, and a 503)."""
    from oar_celery.client.queries import reading as client_reading

    with client_reading() as session:
        yield session


class Answer(JSONResponse):
    """JSON encoded by orjson: a page of 500 jobs costs a millisecond instead of five."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def answer(data: dict[str, Any], status: int = 200) -> JSONResponse:
    """A JSON answer stamped as OAR3's (``api_timestamp``, ``api_timezone``)."""
    data["api_timestamp"] = time.time()
    data.setdefault("api_timezone", "UTC")
    return Answer(data, status_code=status)


def href(request: Request, path: str, params: list[tuple[str, Any]] | None = None) -> str:
    """A link relative to the host, under the prefix the front web server serves the API at."""
    query = urlencode(params or [])
    return f"{request.scope.get('root_path', '')}{path}" + (f"?{query}" if query else "")


def page_size(request: Request, limit: int) -> int:
    """The page size asked for, at most ``OAR_API_MAX_ITEMS`` (OAR3's API_DEFAULT_MAX_ITEMS_NUMBER)."""
    return min(limit, config(request).api_max_items)


def collection(request: Request, items: list[dict[str, Any]], total: int, offset: int, limit: int) -> JSONResponse:
    """OAR's collection: ``items``, ``total``, ``offset`` and the ``self``/``next``/``previous`` links.

    As OAR3's pagination, a page past the end of a non-empty listing is a 404.
    """
    if not items and offset > 0:
        raise ApiError(404, "Empty request: offset past the end of the listing")
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))

    def link(rel: str, at: int) -> dict[str, str]:
        return {"rel": rel, "href": href(request, path, [*kept, ("offset", at), ("limit", limit)])}

    links = [link("self", offset)]
    if limit and offset + limit < total:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("previous", max(0, offset - limit)))
    return answer({"items": items, "total": total, "offset": offset, "links": links})


def without_nulls(item: dict[str, Any]) -> dict[str, Any]:
    """OAR3 leaves out the fields that have no value."""
    return {key: value for key, value in item.items() if value is not None}
