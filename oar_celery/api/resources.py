"""``/resources``: OAR3's resource routes; reads like ``oarnodes``, writes as ``oarnodesetting``, ``oarremoveresource``.

The head decides who may change resources (root and the admin user, as for the
commands). As OAR3, a refused change answers 200 with the head's line in
``status`` and a non-zero ``exit_status``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from oar_celery.api import reads, schemas
from oar_celery.api.auth import authenticated
from oar_celery.api.common import ERRORS, answer, collection, config, href, page_size, reading, without_nulls
from oar_celery.api.errors import ApiError
from oar_celery.client import api as client_api
from oar_celery.client.errors import ClientError, NotDelivered

router = APIRouter(prefix="/resources", tags=["resources"], responses=ERRORS)

ResourceId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a resource id")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _shown(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    item["links"] = [
        {"rel": "self", "href": href(request, f"/resources/{item['id']}")},
        {"rel": "member", "href": href(request, f"/resources/nodes/{item['network_address']}"), "title": "node"},
        {"rel": "collection", "href": href(request, f"/resources/{item['id']}/jobs"), "title": "jobs"},
    ]
    return item


def _list(request: Request, *, detailed: bool, network_address: str | None, offset: int, limit: int) -> JSONResponse:
    size = page_size(request, limit)
    with reading() as session:
        items, total = reads.resources_page(session, detailed=detailed, network_address=network_address,
                                            offset=offset, limit=size)
    return collection(request, [_shown(request, item) for item in items], total, offset, size)


@router.get("", response_model=schemas.Collection, summary="List resources")
@router.get("/", response_model=schemas.Collection, include_in_schema=False)
def index(request: Request, offset: Offset = 0, limit: Limit = 25, detailed: bool = False,
          network_address: str | None = None) -> JSONResponse:
    """OAR3's ``GET /resources``: id, state, available_upto and host; ``detailed`` adds every column."""
    return _list(request, detailed=detailed, network_address=network_address, offset=offset, limit=limit)


@router.get("/details", response_model=schemas.Collection, summary="List resources with every column")
def details(request: Request, offset: Offset = 0, limit: Limit = 25) -> JSONResponse:
    return _list(request, detailed=True, network_address=None, offset=offset, limit=limit)


@router.get("/busy", response_model=schemas.Busy, summary="How many resources running jobs hold")
def busy(request: Request) -> JSONResponse:
    with reading() as session:
        return answer({"busy": reads.busy_resources(session)})


@router.get("/nodes/{network_address}", response_model=schemas.Collection, summary="The resources of one host")
def node(request: Request, network_address: str, offset: Offset = 0, limit: Limit = 500) -> JSONResponse:
    return _list(request, detailed=True, network_address=network_address, offset=offset, limit=limit)


def _resource(resource_id: int) -> dict[str, Any]:
    with reading() as session:
        found = reads.one_resource(session, resource_id)
    if found is None:
        raise ApiError(404, "Resource not found")
    return found


@router.get("/{resource_id:int}", response_model=schemas.Resource, summary="One resource",
            responses={404: {"model": schemas.Error}})
def show(request: Request, resource_id: ResourceId) -> JSONResponse:
    return answer(_shown(request, _resource(resource_id)))


@router.get("/{resource_id:int}/jobs", response_model=schemas.Collection, summary="The jobs given a resource")
def jobs(request: Request, resource_id: ResourceId, offset: Offset = 0, limit: Limit = 50) -> JSONResponse:
    _resource(resource_id)
    size = page_size(request, limit)
    with reading() as session:
        items, total = reads.resource_jobs(session, resource_id, offset, size)
    shown = [without_nulls({**job, "links": [{"rel": "self", "href": href(request, f"/jobs/{job['id']}")}]})
             for job in items]
    return collection(request, shown, total, offset, size)


def _admin_request(resource_id: int, done: str, call: Any) -> JSONResponse:
    """One change asked of the head: OAR3's answer, the head's line when it refuses."""
    try:
        lines = call()
    except NotDelivered:
        raise
    except ClientError as refusal:
        return answer({"id": resource_id, "status": str(refusal), "exit_status": 1})
    return answer({"id": resource_id, "status": done, "exit_status": 0, "cmd_output": "\n".join(lines)})


@router.post("/{resource_id:int}/state", response_model=schemas.ResourceAnswer,
             summary="Ask for a state change (oarnodesetting -s), applied by the next cycle",
             responses={403: {"model": schemas.Error}})
def state(request: Request, resource_id: ResourceId, parameters: schemas.StateParameters) -> JSONResponse:
    user = authenticated(request, config(request))
    _resource(resource_id)
    result = _admin_request(resource_id, "Change state request registered", lambda: client_api.node_setting(
        user=user, resource_ids=[resource_id], state=parameters.state))
    return result


def _properties(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError:
        raise ApiError(400, "query parameter 'properties' is not JSON (e.g. {\"cpu\": 2})") from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ApiError(400, "query parameter 'properties' must be a JSON object of property: value")
    if any(isinstance(v, dict | list) for v in values.values()):
        raise ApiError(400, "query parameter 'properties': each value must be a number or a text")
    return {name: str(value) for name, value in values.items()}


@router.post("", response_model=schemas.ResourceAnswer, summary="Add a resource (oarnodesetting -a)",
             responses={403: {"model": schemas.Error}})
@router.post("/", response_model=schemas.ResourceAnswer, include_in_schema=False)
def create(request: Request, hostname: Annotated[str, Query(min_length=1, max_length=100)],
           properties: str | None = None) -> JSONResponse:
    """OAR3's ``POST /resources?hostname=...&properties={...}``: one resource on that host."""
    user = authenticated(request, config(request))
    values = _properties(properties)
    try:
        client_api.node_setting(user=user, add=True, hosts=[hostname], properties=values)
    except NotDelivered:
        raise
    except ClientError as refusal:
        return answer({"id": 0, "status": str(refusal), "exit_status": 1})
    with reading() as session:
        created = reads.resource_ids_of(session, hostname)
    resource_id = created[-1] if created else 0
    return answer({"id": resource_id, "status": "ok", "exit_status": 0,
                   "uri": href(request, f"/resources/{resource_id}")})


@router.delete("/{resource_id:int}", response_model=schemas.ResourceAnswer,
               summary="Remove a Dead resource (oarremoveresource)", responses={403: {"model": schemas.Error}})
def delete(request: Request, resource_id: ResourceId) -> JSONResponse:
    user = authenticated(request, config(request))
    _resource(resource_id)
    return _admin_request(resource_id, "Deleted",
                          lambda: client_api.remove_resources([resource_id], user=user))
