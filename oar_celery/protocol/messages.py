"""The shape of every message on the wire, as typed dicts: JSON stays JSON, mypy checks both ends.

A message is a plain JSON object, so a node or client of another version
still reads it; these types only say which keys each side writes and reads.
Optional keys are marked ``NotRequired``: a sender may leave them out, and a
receiver must read them with ``.get``. A new key is always optional, which
keeps the wire compatible in both directions.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, cast


class Credential(TypedDict):
    """``oar-celery authd``'s proof of who sends a request (:mod:`.auth`)."""

    user: str
    issued: float
    nonce: str
    mac: str


class SubmitRequest(TypedDict):
    """``oarsub``'s request: one submission (an array is one request with ``array`` > 1)."""

    user: str
    command: str
    resources: NotRequired[list[str]]
    name: NotRequired[str | None]
    directory: NotRequired[str]
    stdout: NotRequired[str | None]
    stderr: NotRequired[str | None]
    queue: NotRequired[str | None]
    hold: NotRequired[bool]
    types: NotRequired[list[str]]
    properties: NotRequired[str | None]
    dependencies: NotRequired[list[int]]
    reservation: NotRequired[str | None]
    notify: NotRequired[str | None]
    checkpoint: NotRequired[int]
    signal: NotRequired[int | None]
    array: NotRequired[int]
    array_params: NotRequired[list[str] | None]
    project: NotRequired[str | None]
    env: NotRequired[dict[str, str]]
    #: ``oarsub -I``: the job holds its resources for the user's shell, and ends with it.
    interactive: NotRequired[bool]
    initial_request: NotRequired[str]
    submission_id: NotRequired[str]
    resubmit_job_id: NotRequired[int]


class LaunchSpec(TypedDict):
    """What a node needs to run one job (the Runner writes it, bipbip reads it)."""

    job_id: int
    user: str
    command: str
    directory: str
    name: str
    walltime: int
    hosts: list[str]
    resources: list[int]
    nodefile: str
    stdout: str
    stderr: str
    env: dict[str, str]
    array_id: int | None
    array_index: int | None
    checkpoint: int
    checkpoint_signal: int
    project: str | None
    types: list[str]
    kill_grace: float
    #: OAR's resource properties file (``OAR_RESOURCE_PROPERTIES_FILE``): a line per resource.
    resource_properties: NotRequired[str]
    #: Per host, the CPU ids of the job's cores, and its memory limit in MB where resources have ``mem``.
    cpusets: NotRequired[dict[str, list[str]]]
    mem: NotRequired[dict[str, int]]
    #: An INTERACTIVE job (``oarsub -I``, or a reservation without a command): the node holds the
    #: resources while users' shells connect to its job-shell service.
    interactive: NotRequired[bool]
    #: ``oarsub -I``: seconds its client has to connect once the job runs, or the job is killed (0: no limit).
    client_timeout: NotRequired[float]


#: Why a job's process is gone, as the node says it.
EndReason = Literal[
    "exited", "walltime", "killed", "prologue_error", "epilogue_error", "launch_error", "user_unknown",
]


class RunningReport(TypedDict):
    """The node started the job."""

    kind: Literal["running"]
    job_id: int
    host: str
    pid: int | None


class EndedReport(TypedDict):
    """The job's processes are gone; ``exit_code`` is None when it never ran."""

    kind: Literal["ended"]
    job_id: int
    host: str
    exit_code: int | None
    reason: EndReason
    message: str


Report = RunningReport | EndedReport


class JobStatus(TypedDict):
    """A job's final status as its node records it (``status.json``) and returns it to a ping."""

    exit_code: int | None
    reason: EndReason
    message: str
    ended_at: NotRequired[float]


class ErrorAnswer(TypedDict):
    """A refusal: the one line the user is shown."""

    error: str


class SubmitAnswer(TypedDict):
    """The ids of the jobs one submission created (several for an array).

    ``reply`` is the first job's reply token: a reservation's verdict waits
    for its client under a name only the head and this answer's reader know.
    """

    job_ids: list[int]
    reply: NotRequired[str]


class ManyAnswer(TypedDict):
    """One answer per request of ``submit_many``, in order."""

    results: list[SubmitAnswer | ErrorAnswer]


class ControlAnswer(TypedDict):
    """``oardel``/``oarhold``/``oarresume``: one line per job id (JSON keys are text), and which failed.

    ``failed`` is what tells a refusal from a success: a client never reads
    it from the wording of the line.
    """

    results: dict[str, str]
    failed: list[int]


class LinesAnswer(TypedDict):
    """An admin request's answer (``oarqueue``, ``oarnotify``, ``oaraccounting``, ``oarwalltime``): lines to print."""

    results: list[str]


class LaunchSummary(TypedDict):
    """What ``launch_many`` did: the node's log line, nobody stores it."""

    launched: list[int]
    refused: dict[str, str]


def parse_report(raw: object) -> Report:
    """A report as a node sent it, checked: ValueError names what is wrong.

    Reports come from the broker, where anything may be written; the head
    reads nothing it has not checked here.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"a report is an object, not {type(raw).__name__}")
    job_id, host = _int(raw.get("job_id"), "job_id"), str(raw.get("host") or "")
    kind = raw.get("kind")
    if kind == "running":
        pid = raw.get("pid")
        return RunningReport(kind="running", job_id=job_id, host=host, pid=None if pid is None else _int(pid, "pid"))
    if kind == "ended":
        code = raw.get("exit_code")
        reason = str(raw.get("reason") or "exited")  # a reason this head does not know still ends the job
        exit_code = None if code is None else _int(code, "exit_code")
        return EndedReport(kind="ended", job_id=job_id, host=host, exit_code=exit_code,
                           reason=cast(EndReason, reason), message=str(raw.get("message") or ""))
    raise ValueError(f"unknown kind {kind!r}")


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return int(value)


def ended_report(job_id: object, host: str, status: JobStatus | dict[str, object]) -> EndedReport:
    """The end report a node's recorded final status stands for (a ping answer carries these)."""
    raw = {"kind": "ended", "job_id": job_id, "host": host, "exit_code": status.get("exit_code"),
           "reason": status.get("reason", "exited"), "message": status.get("message", "")}
    report = parse_report(raw)
    assert report["kind"] == "ended"
    return report
