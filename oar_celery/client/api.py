"""A small Python API over oar-celery, what the user commands are built on.

Writes go to the head worker, which checks that the user owns the jobs; the
user sent is the one running this process (:func:`current_user`). Reads go to
the database. Every failure is a :class:`ClientError` with a one-line message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from oar_celery.client.errors import BrokerUnreachable, ClientError, NeverSent, NoAnswer, NotDelivered
from oar_celery.config import current_user
from oar_celery.protocol.names import Task

SUBMIT_TASK = Task.SUBMIT
DELETE_TASK = Task.DELETE
HOLD_TASK = Task.HOLD
RESUME_TASK = Task.RESUME
NODE_SETTING_TASK = Task.NODE_SETTING
REMOVE_RESOURCES_TASK = Task.REMOVE_RESOURCES

#: How a per-job line says the request was refused, when the head does not list failures.


class Outcome(dict[int, str]):
    """Per-job answer lines of a control request, and which of them failed."""

    def __init__(self, lines: Mapping[int, str], failed: Iterable[int] = ()) -> None:
        super().__init__(lines)
        self.failed: set[int] = set(failed)

    @property
    def ok(self) -> bool:
        return not self.failed


def _call(task: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    from oar_celery.client.transport import call

    answer = call(task, _with_credential(kwargs), timeout=timeout)
    if answer.get("error"):
        raise ClientError(str(answer["error"]))
    return answer


#: How a head-side process that authenticated its users itself (the REST API) proves them: ``(user, request)``
#: → credential. ``None``: from this machine's authd, for the user running the process (the commands).
Signer = Callable[[str, dict[str, Any]], dict[str, Any]]
_signer: Signer | None = None


def sign_requests_with(signer: Signer | None) -> None:
    """Make this process sign each request for the user it names (see :data:`Signer`)."""
    global _signer
    _signer = signer


def acting_user(kwargs: Mapping[str, Any]) -> str:
    """The user a head request is made for: its ``user``, or its submission's (all of a batch's)."""
    requests = [kwargs["request"]] if isinstance(kwargs.get("request"), Mapping) else kwargs.get("requests") or []
    users = {str(kwargs["user"])} if kwargs.get("user") else {str(r.get("user") or "") for r in requests}
    if len(users) != 1 or not next(iter(users)):
        raise ClientError("a signed request names exactly one user")
    return users.pop()


def _with_credential(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request with a fresh credential from this machine's authd, when the cluster uses one."""
    from oar_celery.config import settings

    if _signer is not None:
        return {**kwargs, "credential": _signer(acting_user(kwargs), kwargs)}
    socket_path = settings().auth_socket
    if not socket_path:
        return kwargs
    from oar_celery.protocol.auth import AuthError, fetch_credential

    try:
        return {**kwargs, "credential": fetch_credential(socket_path, kwargs)}
    except AuthError as error:
        raise ClientError(str(error)) from None


def _ids(job_ids: Iterable[int]) -> list[int]:
    return [int(job_id) for job_id in job_ids]


# ------------------------------------------------------------------------------ writes


#: Longest wait for one answer before the submission is asked again (same submission id).
ASK_AGAIN_AFTER = 10.0
#: How long a broker that refuses every connection is tried, when no request could have left yet.
NEVER_SENT_PATIENCE = 5.0
#: After the deadline, how long the head may still take to finish a commit it had begun.
COMMIT_GRACE = 2.0


def _submit_call(task: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Send a submission, and ask again with the same submission id until its outcome is known.

    No phantom submission: the request carries the client's ``deadline``,
    past which the head commits no new job, so once it has passed the
    outcome is final. Before it, an unreachable broker or a missing answer
    means asking again (safe: the head answers a submission id it already
    took with the jobs it made then). After it, the client looks the
    submission id up in the database (what ``oarstat`` reads), then asks the
    head once more; it says "failed" only when one of them says no job was
    made, and otherwise that the outcome is unknown, naming the submission.
    """
    from oar_celery.config import settings

    started = time.time()
    deadline = started + settings().client_timeout
    request = {**kwargs, "deadline": deadline}
    pause, sent = 0.2, False
    while (left := deadline - time.time()) > 0:
        try:
            return _call(task, request, timeout=min(left, ASK_AGAIN_AFTER))
        except NeverSent:
            if not sent and time.time() - started > NEVER_SENT_PATIENCE:
                raise  # the head never had it: nothing was submitted
        except BrokerUnreachable:
            sent = True
        except NoAnswer:
            sent = True
            continue
        time.sleep(min(pause, max(0.0, deadline - time.time())))
        pause = min(pause * 2, 2.0)
    time.sleep(COMMIT_GRACE)
    return _outcome_after_deadline(task, request)


def _submission_ids(kwargs: Mapping[str, Any]) -> list[str]:
    requests = [kwargs["request"]] if isinstance(kwargs.get("request"), Mapping) else kwargs.get("requests") or []
    return [str(r["submission_id"]) for r in requests if r.get("submission_id")]


def _outcome_after_deadline(task: str, request: dict[str, Any]) -> dict[str, Any]:
    """What became of a submission whose deadline passed: from the database, else the head; never a guess."""
    ids = _submission_ids(request)
    from oar_celery.client import queries

    try:
        with queries.reading() as session:
            made = queries.submitted_jobs(session, ids)
    except Exception:  # noqa: BLE001 - no database access from here: ask the head
        made = None
    if made is not None:
        if task == SUBMIT_TASK:
            if ids and ids[0] in made:
                return {"job_ids": made[ids[0]]}
            raise ClientError(f"no answer from the head within {_timeout():g}s: nothing was submitted")
        return {"results": [{"job_ids": made[sid]} if sid in made else {"error": "not submitted: no answer in time"}
                            for sid in ids]}
    try:
        return _call(task, request, timeout=RECHECK_TIMEOUT)
    except NotDelivered:
        raise ClientError(f"no answer from the head within {_timeout():g}s and no database to ask: the outcome of "
                          f"submission {ids[0] if ids else '?'} is unknown (look for it with oarstat)") from None


def _timeout() -> float:
    from oar_celery.config import settings

    return settings().client_timeout


#: How long the last question to the head waits, once the deadline has passed.
RECHECK_TIMEOUT = 5.0


def _with_identity(request: dict[str, Any], user: str) -> dict[str, Any]:
    return {**request, "user": request.get("user") or user, "submission_id": os.urandom(16).hex()}


def submit(request: dict[str, Any]) -> list[int]:
    """Submit one job (or an array); the ids given by the head, in order."""
    return submit_for_reply(request)[0]


def submit_for_reply(request: dict[str, Any]) -> tuple[list[int], str]:
    """Submit one job (or an array): its ids, and the reply token its reservation's verdict waits under."""
    answer = _submit_call(SUBMIT_TASK, {"request": _with_identity(request, current_user())})
    job_ids = answer.get("job_ids")
    if not isinstance(job_ids, list) or not job_ids:
        raise ClientError(f"the head accepted the job but sent no job id: {answer!r}")
    return [int(job_id) for job_id in job_ids], str(answer.get("reply") or "")


SUBMIT_MANY_TASK = Task.SUBMIT_MANY


def submit_many(requests: Sequence[dict[str, Any]]) -> list[list[int] | ClientError]:
    """Submit many jobs in one message (one transaction on the head); per request its ids or its refusal.

    A refused request does not stop the others, so the answer keeps the
    order of ``requests``: a list of ids, or the :class:`ClientError` saying why.
    """
    user = current_user()
    payload = [_with_identity(request, user) for request in requests]
    results = _submit_call(SUBMIT_MANY_TASK, {"requests": payload}).get("results")
    if not isinstance(results, list) or len(results) != len(payload):
        raise ClientError(f"the head answered a batch of {len(payload)} with {results!r}")
    return [_ids_or_refusal(answer) for answer in results]


def _ids_or_refusal(answer: Mapping[str, Any]) -> list[int] | ClientError:
    if answer.get("job_ids"):
        return [int(job_id) for job_id in answer["job_ids"]]
    return ClientError(str(answer.get("error") or "the head sent no job id"))


def outcome(answer: Mapping[str, Any], job_ids: Sequence[int]) -> Outcome:
    """Read ``{"results": {id: line}, "failed": [ids]}``: a job failed because the head says so.

    The head lists its failures (``"failed"``) or answers a job with
    ``{"error": line}``; the wording of a line never decides.
    """
    raw = answer.get("results") or {}
    explicit = {int(job_id) for job_id in answer.get("failed") or ()}
    lines: dict[int, str] = {}
    failed = set(explicit)
    for key, value in raw.items():
        job_id = int(key)
        if isinstance(value, Mapping):
            line = str(value.get("error") or value.get("message") or value)
            if value.get("error"):
                failed.add(job_id)
        else:
            line = str(value)
        lines[job_id] = line
    for job_id in job_ids:
        if job_id not in lines:
            lines[job_id] = f"no answer about job {job_id}"
            failed.add(job_id)
    return Outcome(lines, failed)


def delete(
    job_ids: Iterable[int], *, user: str | None = None, signal: int | None = None, checkpoint: bool = False
) -> Outcome:
    """oardel: delete jobs, or send them ``signal`` / their checkpoint signal."""
    ids = _ids(job_ids)
    kwargs = {"user": user or current_user(), "job_ids": ids, "signal": signal, "checkpoint": checkpoint}
    return outcome(_call(DELETE_TASK, kwargs), ids)


BESTEFFORT_TASK = Task.BESTEFFORT
FORCE_TERMINATE_TASK = Task.FORCE_TERMINATE


def toggle_besteffort(job_ids: Iterable[int], *, user: str | None = None) -> Outcome:
    """``oardel -b``: running jobs become besteffort, or stop being so (admins only)."""
    ids = _ids(job_ids)
    return outcome(_call(BESTEFFORT_TASK, {"user": user or current_user(), "job_ids": ids}), ids)


def force_terminate(job_ids: Iterable[int], *, user: str | None = None) -> Outcome:
    """``oardel --force-terminate-finishing-job``: jobs stuck in Finishing become Terminated (admins only)."""
    ids = _ids(job_ids)
    return outcome(_call(FORCE_TERMINATE_TASK, {"user": user or current_user(), "job_ids": ids}), ids)


def job_key(job_id: int, *, user: str | None = None) -> dict[str, Any]:
    """``{"state", "job_key"}`` of one's own job (an admin's: any); ClientError with the head's line."""
    return _call(Task.JOB_KEY, {"user": user or current_user(), "job_id": int(job_id)})


def hold(job_ids: Iterable[int], *, user: str | None = None, running: bool = False) -> Outcome:
    """oarhold: hold waiting jobs (suspend running ones with ``running``)."""
    ids = _ids(job_ids)
    return outcome(_call(HOLD_TASK, {"user": user or current_user(), "job_ids": ids, "running": running}), ids)


def resume(job_ids: Iterable[int], *, user: str | None = None) -> Outcome:
    """oarresume: release held jobs, resume suspended ones."""
    ids = _ids(job_ids)
    return outcome(_call(RESUME_TASK, {"user": user or current_user(), "job_ids": ids}), ids)


def node_setting(
    *,
    user: str | None = None,
    add: bool = False,
    hosts: Sequence[str] = (),
    resource_ids: Sequence[int] = (),
    properties: Mapping[str, str] | None = None,
    state: str | None = None,
    no_wait: bool = False,
    maintenance: str | None = None,
    drain: str | None = None,
) -> list[str]:
    """oarnodesetting: add resources, change their state or properties."""
    kwargs = {
        "user": user or current_user(),
        "add": add,
        "hosts": list(hosts),
        "resource_ids": [int(r) for r in resource_ids],
        "properties": dict(properties or {}),
        "state": state,
        "no_wait": no_wait,
        "maintenance": maintenance,
        "drain": drain,
    }
    results = _call(NODE_SETTING_TASK, kwargs).get("results") or []
    return [str(line) for line in results]


def remove_resources(resource_ids: Sequence[int], *, user: str | None = None) -> list[str]:
    """oarremoveresource: delete ``Dead`` resources (all or none)."""
    kwargs = {"user": user or current_user(), "resource_ids": [int(r) for r in resource_ids]}
    return [str(line) for line in _call(REMOVE_RESOURCES_TASK, kwargs).get("results") or []]


def change_properties(adds: Sequence[str] = (), deletes: Sequence[str] = (), renames: Sequence[tuple[str, str]] = (),
                      *, text: bool = False, user: str | None = None) -> list[str]:
    """oarproperty -a/-d/-r: add, delete or rename property columns, all or none (admin)."""
    kwargs = {"user": user or current_user(), "adds": list(adds), "deletes": list(deletes),
              "renames": [list(pair) for pair in renames], "text": text}
    return [str(line) for line in _call(Task.PROPERTY, kwargs).get("results") or []]


def add_resources(nodeset: str, *, cpus: int = 1, cores: int = 1, properties: Mapping[str, str] | None = None,
                  node_cpus: int | None = None, user: str | None = None) -> list[str]:
    """oar-celery resources add: one resource per core of every new host of a nodeset (admin)."""
    kwargs = {"user": user or current_user(), "nodeset": nodeset, "cpus": cpus, "cores": cores,
              "properties": dict(properties or {}), "node_cpus": node_cpus}
    return [str(line) for line in _call(Task.ADD_RESOURCES, kwargs).get("results") or []]


def queue(action: str, name: str | None = None, priority: int | None = None, policy: str | None = None,
          *, user: str | None = None) -> list[str]:
    """oarqueue / oarnotify's queue options: list, enable, disable, add, change or remove queues (admin)."""
    kwargs = {"user": user or current_user(), "action": action, "name": name, "priority": priority, "policy": policy}
    return [str(line) for line in _call(Task.QUEUE, kwargs).get("results") or []]


def notify_tag(tag: str, *, user: str | None = None) -> list[str]:
    """oarnotify TAG: send Almighty one of its messages (admin)."""
    return [str(line) for line in _call(Task.NOTIFY_TAG, {"user": user or current_user(), "tag": tag})["results"]]


def accounting(*, reinitialize: bool = False, delete_before: int | None = None, user: str | None = None) -> list[str]:
    """oaraccounting: catch up the accounting table, empty it, or drop its old windows (admin)."""
    kwargs = {"user": user or current_user(), "reinitialize": reinitialize, "delete_before": delete_before}
    return [str(line) for line in _call(Task.ACCOUNTING, kwargs).get("results") or []]


def walltime(job_id: int, new_walltime: str | None = None, *, delay_next_jobs: bool = False,
             user: str | None = None) -> list[str]:
    """oarwalltime: the job's walltime change status, or a request for ``[+|-]DURATION``."""
    kwargs = {"user": user or current_user(), "job_id": int(job_id), "new_walltime": new_walltime,
              "delay_next_jobs": delay_next_jobs}
    return [str(line) for line in _call(Task.WALLTIME, kwargs).get("results") or []]


def wait_reservation(job_id: int, token: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Block until the head grants or refuses reservation ``job_id`` (``token``: from :func:`submit_for_reply`)."""
    from oar_celery.client.replies import wait_reservation as wait

    return wait(job_id, token, timeout=timeout)


# ------------------------------------------------------------------------------- reads


def jobs(
    *,
    job_ids: Sequence[int] | None = None,
    user: str | None = None,
    array_id: int | None = None,
    current_only: bool = False,
    full: bool = False,
) -> list[dict[str, Any]]:
    """Jobs as dicts (see :data:`queries.JOB_COLUMNS`); ``full`` adds resources, events..."""
    from oar_celery.client import queries

    conditions = queries.job_selection(job_ids=job_ids, user=user, array_id=array_id, current_only=current_only)
    with queries.reading() as session:
        return queries.list_jobs(session, conditions, full=full)


def accounting_summary(
    start: float, stop: float, user: str | None = None, *, by_project: bool = False
) -> dict[tuple[str, str], dict[str, int]]:
    """Usage between two dates per user (and project), from the accounting table."""
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.accounting_summary(session, start, stop, user, by_project=by_project)


def last_karmas(user: str, before: float) -> dict[str, float]:
    """Per project, the karma of the user's last job started before ``before`` (fair-share on)."""
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.last_karmas(session, user, before)


def job(job_id: int) -> dict[str, Any]:
    """One job with every detail; ClientError if there is no such job."""
    found = jobs(job_ids=[job_id], full=True)
    if not found:
        raise ClientError(f"job {job_id} does not exist")
    return found[0]


def job_events(job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.job_events(session, job_ids)


def job_resources(job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The resources (every column) each job holds or held."""
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.job_resources(session, job_ids)


def resources(
    *, hosts: Sequence[str] | None = None, resource_ids: Sequence[int] | None = None, with_jobs: bool = False
) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """Resources as dicts of every column, and (``with_jobs``) the jobs on each."""
    from oar_celery.client import queries

    with queries.reading() as session:
        rows = queries.list_resources(session, hosts=hosts, resource_ids=resource_ids)
        on: dict[int, list[int]] = {}
        if with_jobs and rows:
            every = hosts is None and resource_ids is None
            on = queries.resource_jobs(session, None if every else [r["resource_id"] for r in rows])
        return rows, on


def host_events(hosts: Sequence[str] | None = None, *, since: float | None = None) -> list[dict[str, Any]]:
    """The latest events of the hosts, or (``since``) all those from that date on."""
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.host_events(session, hosts, since=since)


def known_hosts() -> list[str]:
    from oar_celery.client import queries

    with queries.reading() as session:
        return queries.known_hosts(session)
