"""The API's front routes, as OAR3's: index, version, timezone, who am I, tokens; and a health check."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from oar_celery import __version__
from oar_celery.api import API_VERSION, schemas
from oar_celery.api.auth import authenticated, create_token
from oar_celery.api.common import ERRORS, answer, config, href, reading

router = APIRouter(tags=["frontend"], responses=ERRORS)


@router.get("/", summary="The API's entry points")
def index(request: Request) -> JSONResponse:
    return answer({
        "api_version": API_VERSION, "apilib_version": API_VERSION, "oar_version": __version__,
        "links": [{"rel": "collection", "href": href(request, path), "title": title} for path, title in (
            ("/jobs", "jobs"), ("/resources", "resources"), ("/drawgantt", "gantt"), ("/monika", "nodes"),
            ("/openapi.json", "openapi"))],
    })


@router.get("/version", response_model=schemas.Version, summary="OAR's and the API's versions")
def version() -> JSONResponse:
    return answer({"oar_server_version": __version__, "oar_version": __version__, "oar_lib_version": __version__,
                   "api_version": API_VERSION, "apilib_version": API_VERSION})


@router.get("/timezone", summary="The server's timezone (every date is UTC epoch seconds)")
def timezone() -> JSONResponse:
    return answer({"timezone": time.strftime("%Z")})


@router.get("/whoami", response_model=schemas.Whoami, summary="The authenticated user",
            responses={403: {"model": schemas.Error}})
def whoami(request: Request) -> JSONResponse:
    return answer({"authenticated_user": authenticated(request, config(request))})


@router.get("/check_token", response_model=schemas.TokenCheck, summary="Whether a token is valid",
            responses={403: {"model": schemas.Error}})
def check_token(request: Request) -> JSONResponse:
    return answer({"user": authenticated(request, config(request)), "auth": "Token valid"})


@router.get("/get_new_token", response_model=schemas.Token, summary="A fresh token for the authenticated user",
            responses={403: {"model": schemas.Error}})
def get_new_token(request: Request) -> JSONResponse:
    settings = config(request)
    return answer({"OAR_API_TOKEN": create_token(authenticated(request, settings), settings)})


@router.get("/check", response_model=schemas.Check, summary="Whether the database and the broker answer",
            responses={503: {"model": schemas.Check}})
def check(request: Request) -> JSONResponse:
    from sqlalchemy import text

    from oar_celery.client.errors import ClientError
    from oar_celery.client.transport import probe

    states = {"database": "ok", "broker": "ok"}
    try:
        with reading() as session:
            session.execute(text("SELECT 1"))
    except ClientError as error:
        states["database"] = str(error)
    try:
        probe(config(request).broker_url)
    except ClientError as error:
        states["broker"] = str(error)
    return answer(dict(states), 200 if states == {"database": "ok", "broker": "ok"} else 503)
