"""The shapes of the REST API's requests and answers, for the OpenAPI document and the checks of input.

Answers are built as plain dicts (a page of 500 jobs is not validated field
by field); these models document them. Items allow more fields than they
name: a resource carries every property an admin added.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Link(BaseModel):
    rel: str
    href: str
    title: str | None = None


class Error(BaseModel):
    """Every error: one line."""

    detail: str


class Stamped(BaseModel):
    model_config = ConfigDict(extra="allow")

    api_timestamp: float = Field(description="When the API built the answer (UTC epoch seconds)")


class Collection(Stamped):
    """A page of a listing: ``links`` give the pages before and after."""

    items: list[dict[str, Any]]
    total: int = Field(description="Items in the whole listing")
    offset: int
    links: list[Link]


class Job(BaseModel):
    """A job in OAR3's names; ``details`` adds resources, nodes, events, types, walltime."""

    model_config = ConfigDict(extra="allow")

    id: int
    state: str
    user: str | None = None
    queue_name: str | None = None
    name: str | None = None
    submission_time: int | None = None
    exit_code: int | None = None
    exit_status_code: int | None = None
    links: list[Link] = []


class Resource(BaseModel):
    """A resource: ``id`` and its columns, the properties admins added included."""

    model_config = ConfigDict(extra="allow")

    id: int
    network_address: str | None = None
    state: str | None = None


class JobAnswer(Stamped):
    """The answer to a request on a job: the head's line and OAR's exit status (0: done)."""

    id: int
    cmd_output: str
    exit_status: int
    status: str


class SubmitAnswer(Stamped):
    id: int = Field(description="The job's id (an array's first job, which is also its array id)")
    ids: list[int] = Field(description="Every job made (one per array job)")
    cmd_output: str
    links: list[Link]


class SubmitParameters(BaseModel):
    """OAR3's submission: every ``oarsub`` long option, under its name (a toggle: true, or 1 as OAR's API)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)

    command: str = Field(min_length=1, description="What the job runs")
    resource: list[str] | str = Field(default_factory=list, description='-l, e.g. "/nodes=1/core=2,walltime=1:0:0"')
    workdir: str | None = Field(None, description="the working directory (default: the user's home)")
    directory: str | None = None
    param_file: str | None = Field(None, description="an array job per line of this text")
    array: int | None = Field(None, ge=1)
    queue: str | None = None
    reservation: str | None = Field(None, description='"YYYY-MM-DD HH:MM:SS"')
    checkpoint: int = Field(0, ge=0)
    signal: int | None = Field(None, ge=1, le=64)
    project: str | None = None
    name: str | None = None
    notify: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    hold: bool | Literal[0, 1] | None = None
    types: list[str] | str | None = Field(None, alias="type")
    dependencies: list[int] | int | None = Field(None, alias="after")
    anterior: list[int] | int | None = None
    properties: str | None = Field(None, alias="property")
    use_job_key: Literal[False] = Field(False, alias="use-job-key", description="not supported")
    scanscript: Literal[False] = Field(False, description="not supported")

    @field_validator("array", "checkpoint", "signal", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """JSON Schema's integers include ``81084.0``: an integral float is taken as the integer it is."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("use_job_key", "scanscript", mode="before")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value is not False:
            raise ValueError("not supported by this cluster (only false)")
        return value


class WalltimeChange(BaseModel):
    """``POST /jobs/<id>/walltime``: ``oarwalltime``'s request, ``[+|-]H:MM:SS``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    walltime: str = Field(pattern=r"^[+-]?\d+(:\d{1,2}){0,2}$", max_length=32)
    delay_next_jobs: bool = False


class JobMethod(BaseModel):
    """``POST /jobs/<id>``: OAR's way for clients without DELETE."""

    method: Literal["delete", "checkpoint", "hold", "rhold", "resume"]


class StateParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["Alive", "Absent", "Dead"]


class ResourceAnswer(Stamped):
    id: int
    status: str
    exit_status: int = 0
    uri: str | None = None


class Busy(Stamped):
    busy: int


class Version(Stamped):
    oar_version: str
    oar_server_version: str
    oar_lib_version: str
    api_version: str
    apilib_version: str


class Whoami(Stamped):
    authenticated_user: str


class Token(Stamped):
    OAR_API_TOKEN: str


class TokenCheck(Stamped):
    user: str
    auth: str


class Check(Stamped):
    database: str
    broker: str


class Gantt(Stamped):
    """The Gantt's and the node grid's data: every resource, the jobs of a time window."""

    since: float
    until: float
    now: float
    resources: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
