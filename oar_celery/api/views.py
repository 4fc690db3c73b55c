"""The web views: a Gantt chart of jobs over resources (OAR's drawgantt) and a node grid (OAR's monika).

Plain HTML and JavaScript files, no build step: the pages fetch ``/gantt``
(every resource, the jobs of a time window) and draw it themselves, one SVG
rectangle per job and run of consecutive resources, so thousands of
resources stay one request and one drawing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from oar_celery.api import reads, schemas
from oar_celery.api.common import ERRORS, answer, reading
from oar_celery.api.errors import ApiError

STATIC = Path(__file__).parent / "static"
#: The widest window the Gantt may ask for (a month), so that one request stays cheap.
MAX_WINDOW = 31 * 24 * 3600.0

router = APIRouter(tags=["views"], responses=ERRORS)


@router.get("/gantt", response_model=schemas.Gantt, summary="The Gantt's data: resources and a time window's jobs")
def gantt(
    request: Request,
    since: Annotated[float | None, Query(ge=0, le=2**33, description="window start (default: 2 h ago)")] = None,
    until: Annotated[float | None, Query(ge=0, le=2**33, description="window end (default: in 24 h)")] = None,
) -> JSONResponse:
    now = time.time()
    start = now - 2 * 3600 if since is None else since
    end = now + 24 * 3600 if until is None else until
    if not start < end or end - start > MAX_WINDOW:
        raise ApiError(400, "query parameters 'since' and 'until': need 0 <= since < until, at most 31 days apart")
    with reading() as session:
        data = reads.gantt(session, start, end)
    return answer({"since": start, "until": end, "now": now, **data})


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


@router.get("/drawgantt", include_in_schema=False)
def drawgantt() -> FileResponse:
    return _page("gantt.html")


@router.get("/monika", include_in_schema=False)
def monika() -> FileResponse:
    return _page("grid.html")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, "no such file")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})
