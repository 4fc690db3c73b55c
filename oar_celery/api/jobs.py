"""``/jobs``: OAR3's job routes. Reads like ``oarstat``, writes as ``oarsub``, ``oardel``, ``oarhold``, ``oarresume``.

Every write is the head request the command sends (:mod:`oar_celery.client.api`),
for the authenticated user: the head decides, with the commands' own rules,
whether that user may act on the job. As OAR3, an action answers 200 with the
head's line (``cmd_output``) and OAR's ``exit_status`` (0: done; 1: refused;
4: an array with no job left).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from oar_celery.api import reads, schemas
from oar_celery.api.auth import authenticated, identify
from oar_celery.api.common import ERRORS, answer, collection, config, href, page_size, reading
from oar_celery.api.errors import ApiError
from oar_celery.client import api as client_api
from oar_celery.client.errors import ClientError, NotDelivered
from oar_celery.protocol.states import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)

JobId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a job id")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
#: Exit statuses of OAR's commands.
EXIT_REFUSED = 1
EXIT_NO_ARRAY_JOB = 4
_STATE = "|".join(JobState)
#: OAR's ``state=Waiting,Running`` and ``ids=1:2:3``, as the OpenAPI document says them.
STATE_LIST = rf"^\s*(({_STATE})\s*(,\s*({_STATE})\s*)*)?$"
ID_LIST = r"^(\d+(:\d+)*)?$"
States = Annotated[list[JobState], Query(description="OAR3: states=Waiting&states=Running")]
StateList = Annotated[str | None, Query(pattern=STATE_LIST, description="OAR: state=Waiting,Running")]


def _states(states: list[JobState], state: str | None) -> list[str]:
    """OAR3's ``states=A&states=B`` and OAR's ``state=A,B``, checked against OAR's states."""
    wanted = [*map(str, states), *((state or "").split(","))]
    chosen = [name.strip() for name in wanted if name.strip()]
    known = {member.value for member in JobState}
    for name in chosen:
        if name not in known:
            raise ApiError(422, f"query parameter 'states': unknown job state '{name}'")
    return chosen


def _ids(job_ids: list[int], ids: str | None) -> list[int]:
    """OAR3's ``job_ids=1&job_ids=2`` and OAR's ``ids=1:2``."""
    chosen = list(job_ids)
    for part in (ids or "").split(":"):
        if part.strip():
            if not part.strip().isdigit():
                raise ApiError(422, f"query parameter 'ids': '{part}' is not a job id (ids=1:2:3)")
            chosen.append(int(part))
    return chosen


def _shown(request: Request, job: dict[str, Any], viewer: str | None, *, links: bool = True) -> dict[str, Any]:
    """A job as a viewer may see it: its private fields only for its owner and admins; its links (``self`` only
    in a short listing, where they would be half of the answer)."""
    if "command" in job and (viewer is None or (viewer != job.get("user") and not config(request).is_admin(viewer))):
        job = {key: value for key, value in job.items() if key not in reads.PRIVATE_FIELDS}
    shown = {key: value for key, value in job.items() if value is not None}
    if job.get("exit_code") is not None:
        shown["exit_status_code"] = job["exit_code"]
    root = request.scope.get("root_path", "")
    shown["links"] = [{"rel": "self", "href": f"{root}/jobs/{job['id']}"}]
    if links:
        shown["links"] += [
            {"rel": "collection", "href": f"{root}/jobs/{job['id']}/resources", "title": "resources"},
            {"rel": "collection", "href": f"{root}/jobs/{job['id']}/nodes", "title": "nodes"},
        ]
    return shown


def _list(request: Request, details: bool, *, user: str | None, states: list[JobState], state: str | None,
          array: int | None, job_ids: list[int], ids: str | None, since: int | None, until: int | None,
          offset: int, limit: int) -> JSONResponse:
    viewer = identify(request, config(request))
    conditions = reads.job_conditions(user=user, states=_states(states, state), job_ids=_ids(job_ids, ids),
                                      array_id=array, since=since, until=until)
    size = page_size(request, limit)
    with reading() as session:
        jobs, total = reads.jobs_page(session, conditions, details=details, offset=offset, limit=size)
    return collection(request, [_shown(request, job, viewer, links=details) for job in jobs], total, offset, size)


@router.get("", response_model=schemas.Collection, summary="List jobs (the current ones by default)")
@router.get("/", response_model=schemas.Collection, include_in_schema=False)
def index(
    request: Request,
    user: str | None = None,
    states: States = [],  # noqa: B006
    state: StateList = None,
    array: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    job_ids: Annotated[list[int], Query()] = [],  # noqa: B006
    ids: Annotated[str | None, Query(pattern=ID_LIST, description="OAR: ids=1:2:3")] = None,
    start_time: Annotated[int | None, Query(alias="from", description="jobs not ended before this date")] = None,
    stop_time: Annotated[int | None, Query(alias="to", description="jobs submitted by this date")] = None,
    details: Annotated[str | None, Query(description="any value: every field, resources, nodes, events")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=0, le=2**31 - 1)] = 500,
) -> JSONResponse:
    """OAR3's ``GET /jobs``: without ``states``, ids or an array, the jobs still in the system."""
    return _list(request, bool(details), user=user, states=states, state=state, array=array, job_ids=job_ids,
                 ids=ids, since=start_time, until=stop_time, offset=offset, limit=limit)


@router.get("/details", response_model=schemas.Collection, summary="List jobs with every detail")
def index_details(
    request: Request,
    user: str | None = None,
    states: States = [],  # noqa: B006
    state: StateList = None,
    array: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    start_time: Annotated[int | None, Query(alias="from")] = None,
    stop_time: Annotated[int | None, Query(alias="to")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=0, le=2**31 - 1)] = 500,
) -> JSONResponse:
    return _list(request, True, user=user, states=states, state=state, array=array, job_ids=[], ids=None,
                 since=start_time, until=stop_time, offset=offset, limit=limit)


@router.get("/{job_id:int}", response_model=schemas.Job, summary="One job", responses={404: {"model": schemas.Error}})
def show(request: Request, job_id: JobId, details: bool | None = None) -> JSONResponse:
    viewer = identify(request, config(request))
    with reading() as session:
        job = reads.one_job(session, job_id, details=bool(details))
    if job is None:
        raise ApiError(404, "Job not found")
    return answer(_shown(request, job, viewer))


def _listing(request: Request, job_id: int, read: Callable[..., tuple[list[dict[str, Any]], int]],
             offset: int, limit: int, link: Callable[[dict[str, Any]], list[dict[str, str]]]) -> JSONResponse:
    size = page_size(request, limit)
    with reading() as session:
        if reads.job_owner(session, job_id) is None:
            raise ApiError(404, "Job not found")
        items, total = read(session, job_id, offset, size)
    return collection(request, [{**item, "links": link(item)} for item in items], total, offset, size)


def _resource_links(request: Request, item: dict[str, Any]) -> list[dict[str, str]]:
    return [{"rel": "self", "href": href(request, f"/resources/{item['id']}")},
            {"rel": "collection", "href": href(request, f"/resources/{item['id']}/jobs"), "title": "jobs"}]


@router.get("/{job_id:int}/resources", response_model=schemas.Collection, summary="The resources a job holds or will")
def resources(request: Request, job_id: JobId, offset: Offset = 0,
              limit: Annotated[int, Query(ge=0, le=2**31 - 1)] = 500) -> JSONResponse:
    return _listing(request, job_id, reads.job_resources, offset, limit, lambda item: _resource_links(request, item))


@router.get("/{job_id:int}/nodes", response_model=schemas.Collection, summary="The hosts of a job's resources")
def nodes(request: Request, job_id: JobId, offset: Offset = 0,
          limit: Annotated[int, Query(ge=0, le=2**31 - 1)] = 500) -> JSONResponse:
    def links(item: dict[str, Any]) -> list[dict[str, str]]:
        return [{"rel": "self", "href": href(request, f"/resources/nodes/{item['network_address']}")}]

    return _listing(request, job_id, reads.job_nodes, offset, limit, links)


@router.get("/{job_id:int}/events", response_model=schemas.Collection, summary="A job's events")
def events(request: Request, job_id: JobId, offset: Offset = 0,
           limit: Annotated[int, Query(ge=0, le=2**31 - 1)] = 500) -> JSONResponse:
    return _listing(request, job_id, reads.job_events, offset, limit, lambda item: [])


# ------------------------------------------------------------------------------- writes


def _home(user: str) -> str | None:
    try:
        return pwd.getpwnam(user).pw_dir or None
    except KeyError:
        return None


def _directory(user: str, text: str | None) -> str:
    """The job's working directory: ``directory``/``workdir`` (``~`` and ``$HOME`` are the user's), else home."""
    home = _home(user)
    chosen = text or home
    if not chosen:
        raise ApiError(400, f"user {user} has no home directory here: give the job a 'directory'")
    if chosen.startswith("~/") or chosen == "~" or "$HOME" in chosen:
        if not home:
            raise ApiError(400, f"user {user} has no home directory here: give an absolute 'directory'")
        chosen = chosen.replace("$HOME", home).replace("~", home, 1)
    elif chosen.startswith("~"):
        chosen = os.path.expanduser(chosen)
    if not os.path.isabs(chosen):
        if not home:
            raise ApiError(400, f"the directory '{chosen}' is relative and user {user} has no home here")
        chosen = os.path.join(home, chosen)
    return os.path.normpath(chosen)


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def submission(parameters: schemas.SubmitParameters, user: str) -> dict[str, Any]:
    """OAR3's submission parameters as the head's request (the one ``oarsub`` sends)."""
    home = _home(user) or ""
    params = None
    if parameters.param_file is not None:
        params = [line.strip() for line in parameters.param_file.splitlines() if line.strip()]
        if not params:
            raise ApiError(400, "'param_file' holds no parameter line")
    return {
        "user": user,
        "command": parameters.command.replace("$HOME", home) if home else parameters.command,
        "resources": [r for r in _as_list(parameters.resource) if str(r).strip()],
        "name": parameters.name,
        "directory": _directory(user, parameters.directory or parameters.workdir),
        "stdout": parameters.stdout,
        "stderr": parameters.stderr,
        "queue": parameters.queue,
        "hold": bool(parameters.hold),
        "types": [str(t) for t in _as_list(parameters.types)],
        "properties": parameters.properties,
        "dependencies": [int(d) for d in [*_as_list(parameters.dependencies), *_as_list(parameters.anterior)]],
        "reservation": parameters.reservation,
        "notify": parameters.notify,
        "checkpoint": parameters.checkpoint,
        "signal": parameters.signal,
        "array": len(params) if params else parameters.array,
        "array_params": params,
        "project": parameters.project,
        "initial_request": "oarapi POST /jobs " + parameters.model_dump_json(by_alias=True, exclude_defaults=True),
    }


@router.post("", response_model=schemas.SubmitAnswer, summary="Submit a job (oarsub)",
             responses={400: {"model": schemas.Error}, 403: {"model": schemas.Error}})
@router.post("/", response_model=schemas.SubmitAnswer, include_in_schema=False)
def submit(request: Request, parameters: schemas.SubmitParameters) -> JSONResponse:
    """OAR3's ``POST /jobs``: the job is the authenticated user's; a reservation waits for the head's verdict."""
    user = authenticated(request, config(request))
    job = submission(parameters, user)
    try:
        job_ids, reply = client_api.submit_for_reply(job)
    except NotDelivered:
        raise
    except ClientError as refusal:
        raise ApiError(400, str(refusal)) from None
    lines = [f"OAR_JOB_ID={job_id}" for job_id in job_ids]
    if job["reservation"]:
        wait = config(request).reservation_answer_timeout + 10
        verdict = client_api.wait_reservation(job_ids[0], reply, timeout=wait)
        if verdict.get("status") != "granted":
            raise ApiError(400, f"reservation not valid: {verdict.get('message') or 'refused'} (job {job_ids[0]})")
        lines.append("Reservation valid --> OK")
    first = min(job_ids)
    return answer({"id": first, "ids": job_ids, "cmd_output": "\n".join(lines) + "\n",
                   "links": [{"rel": "self", "href": href(request, f"/jobs/{first}")}]})


def _action(job_id: int, registered: str, act: Callable[[list[int]], client_api.Outcome],
            job_ids: list[int] | None = None) -> JSONResponse:
    """Send one head request on jobs, answered in OAR3's shape."""
    ids = job_ids if job_ids is not None else [job_id]
    if not ids:
        return answer({"id": job_id, "cmd_output": f"There are no job for this array job ({job_id})\n",
                       "exit_status": EXIT_NO_ARRAY_JOB, "status": "No job to act on"})
    try:
        outcome = act(ids)
    except NotDelivered:
        raise
    except ClientError as refusal:
        return answer({"id": job_id, "cmd_output": f"{refusal}\n", "exit_status": EXIT_REFUSED,
                       "status": "Request refused"})
    lines = "".join(f"{outcome[i]}\n" for i in ids if i in outcome)
    return answer({"id": job_id, "cmd_output": lines, "exit_status": EXIT_REFUSED if outcome.failed else 0,
                   "status": "Request refused" if outcome.failed else registered})


def _array_ids(array_id: int) -> list[int]:
    return [job["id"] for job in client_api.jobs(array_id=array_id, current_only=True)]


def _delete(request: Request, job_id: int, array: bool) -> JSONResponse:
    user = authenticated(request, config(request))
    return _action(job_id, "Delete request registered", lambda ids: client_api.delete(ids, user=user),
                   _array_ids(job_id) if array else None)


@router.delete("/{job_id:int}", response_model=schemas.JobAnswer, summary="Delete a job (oardel)",
               responses={403: {"model": schemas.Error}})
def delete(request: Request, job_id: JobId, array: bool = False) -> JSONResponse:
    """``array=true``: every unfinished job of the array ``job_id``."""
    return _delete(request, job_id, array)


@router.post("/{job_id:int}/deletions/new", response_model=schemas.JobAnswer, summary="Delete a job (oardel)",
             responses={403: {"model": schemas.Error}})
@router.delete("/{job_id:int}/deletions/new", response_model=schemas.JobAnswer, summary="Delete a job (oardel)",
               responses={403: {"model": schemas.Error}})
def deletion(request: Request, job_id: JobId, array: bool = False) -> JSONResponse:
    return _delete(request, job_id, array)


def _signal(request: Request, job_id: int, signal: int | None) -> JSONResponse:
    user = authenticated(request, config(request))
    if signal is None:
        return _action(job_id, "Checkpoint request registered",
                       lambda ids: client_api.delete(ids, user=user, checkpoint=True))
    return _action(job_id, "Signal sending request registered",
                   lambda ids: client_api.delete(ids, user=user, signal=signal))


Signal = Annotated[int, Path(ge=1, le=64, description="a signal number (see kill -l)")]


@router.post("/{job_id:int}/signal/{signal:int}", response_model=schemas.JobAnswer, summary="Signal a running job",
             responses={403: {"model": schemas.Error}})
def signal(request: Request, job_id: JobId, signal: Signal) -> JSONResponse:
    return _signal(request, job_id, signal)


@router.post("/{job_id:int}/signals/{signal:int}", response_model=schemas.JobAnswer, include_in_schema=False)
def signals(request: Request, job_id: JobId, signal: Signal) -> JSONResponse:
    return _signal(request, job_id, signal)


@router.post("/{job_id:int}/checkpoints/new", response_model=schemas.JobAnswer,
             summary="Send a running job its checkpoint signal", responses={403: {"model": schemas.Error}})
def checkpoint(request: Request, job_id: JobId) -> JSONResponse:
    return _signal(request, job_id, None)


@router.post("/{job_id:int}/resumptions/new", response_model=schemas.JobAnswer,
             summary="Release a held job, resume a suspended one (oarresume)",
             responses={403: {"model": schemas.Error}})
def resume(request: Request, job_id: JobId) -> JSONResponse:
    user = authenticated(request, config(request))
    return _action(job_id, "Resume request registered", lambda ids: client_api.resume(ids, user=user))


@router.post("/{job_id:int}/{hold}/new", response_model=schemas.JobAnswer,
             summary="Hold a waiting job, or (rholds) suspend a running one (oarhold)",
             responses={403: {"model": schemas.Error}})
def hold(request: Request, job_id: JobId, hold: Literal["holds", "rholds", "hold", "rhold"]) -> JSONResponse:
    user = authenticated(request, config(request))
    running = hold.startswith("r")
    return _action(job_id, "Hold request registered", lambda ids: client_api.hold(ids, user=user, running=running))


def _walltime(request: Request, job_id: int, change: schemas.WalltimeChange | None) -> JSONResponse:
    """``oarwalltime``: the job's walltime change status, or a request, as the command answers."""
    user = authenticated(request, config(request))
    try:
        lines = client_api.walltime(job_id, change.walltime if change else None,
                                    delay_next_jobs=bool(change and change.delay_next_jobs), user=user)
    except NotDelivered:
        raise
    except ClientError as refusal:
        return answer({"id": job_id, "cmd_output": f"{refusal}\n", "exit_status": EXIT_REFUSED,
                       "status": "Request refused"})
    return answer({"id": job_id, "cmd_output": "".join(f"{line}\n" for line in lines), "exit_status": 0,
                   "status": "Walltime change request registered" if change else "Walltime change status"})


@router.get("/{job_id:int}/walltime", response_model=schemas.JobAnswer, summary="A job's walltime change status",
            responses={403: {"model": schemas.Error}})
def walltime_status(request: Request, job_id: JobId) -> JSONResponse:
    return _walltime(request, job_id, None)


@router.post("/{job_id:int}/walltime", response_model=schemas.JobAnswer,
             summary="Ask for more (or less) walltime for a running job (oarwalltime)",
             responses={403: {"model": schemas.Error}})
def walltime_change(request: Request, job_id: JobId, change: schemas.WalltimeChange) -> JSONResponse:
    return _walltime(request, job_id, change)


@router.post("/{job_id:int}", response_model=schemas.JobAnswer, responses={403: {"model": schemas.Error}},
             summary="Act on a job: OAR's form for clients without DELETE")
def update(request: Request, job_id: JobId, body: schemas.JobMethod) -> JSONResponse:
    if body.method == "delete":
        return _delete(request, job_id, False)
    if body.method == "checkpoint":
        return _signal(request, job_id, None)
    if body.method == "resume":
        return resume(request, job_id)
    return hold(request, job_id, "rholds" if body.method == "rhold" else "holds")
