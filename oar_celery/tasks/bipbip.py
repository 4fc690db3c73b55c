"""Node tasks (OAR's bipbip), consumed from ``oar.node.<host>``; no database access.

Every task returns at once: the job itself is watched by the worker's watcher
thread (``oar_celery.node.supervisor``), so no task stays unacknowledged while
a job runs. Kill, signal, suspend and resume act on the job's process group and
cgroup, which the job directory records (``oar_celery.node.jobcontrol``):
suspension freezes the cgroup where the node has a freezer.

Every task checks, before anything else, that the head signed it for this
node (:class:`oar_celery.tasks.signed.SignedTask`, where the node has its key).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from celery.signals import worker_ready

from oar_celery.celery_app import app
from oar_celery.config import Settings, settings
from oar_celery.node import jobcontrol, jobshell, node_hostname, process, recovery, reports
from oar_celery.node.jobdir import JobDir, jobs_root, json_line
from oar_celery.node.supervisor import Supervisor
from oar_celery.protocol.bus import broker_redis
from oar_celery.protocol.messages import ErrorAnswer, LaunchSpec, LaunchSummary
from oar_celery.protocol.names import Key, Task
from oar_celery.tasks.signed import SignedTask

logger = logging.getLogger(__name__)

REQUIRED = ("job_id", "user", "command")


def _job(job_id: int) -> JobDir:
    return JobDir(_jobs_root(settings(), node_hostname()), int(job_id))


_roots: dict[tuple[str, str, str], str] = {}


def _jobs_root(config: Settings, host: str) -> str:
    """Where this node's job directories are, built once (paths cost more than a launch's file writes)."""
    where = (config.node_state_dir, config.state_dir, host)
    found = _roots.get(where)
    if found is None:
        found = _roots[where] = str(jobs_root(config.node_dir, host))
    return found


@app.task(name=Task.NODE_LAUNCH, base=SignedTask)
def launch(spec: LaunchSpec) -> dict[str, Any]:
    """Claim the job's directory and start its supervisor; refuse a second launch."""
    return start(spec)


@app.task(name=Task.NODE_LAUNCH_MANY, base=SignedTask)
def launch_many(specs: list[LaunchSpec]) -> LaunchSummary | ErrorAnswer:
    """Every job a scheduling round starts on this node, in one message.

    A round often starts several jobs per node; one task for all of them
    costs the node one receive, one acknowledgement and one set of task
    events instead of one per job. Each job is still claimed on its own, so
    a job already launched is refused without refusing the others. The
    result is a short summary (``launched`` ids, ``refused`` id → why): the
    worker writes it to its log line, and no one stores it.
    """
    if not isinstance(specs, list):
        logger.error("launch_many on %s refused: %r is not a list of specs", node_hostname(), specs)
        return {"error": "launch_many needs a list of specs"}
    keys = _key_material(specs)
    outcomes = [start(spec, keys) for spec in specs]
    return {
        "launched": [o["job_id"] for o in outcomes if o.get("launched")],
        "refused": {str(o.get("job_id")): o["error"] for o in outcomes if "error" in o},
    }


def _key_material(specs: list[LaunchSpec]) -> jobshell.KeyMaterial:
    """What the job keys of one message share, from this process's cache (``jobshell.KeyCache``)."""
    hosts = (host for spec in specs if isinstance(spec, dict) for host in spec.get("hosts") or ())
    return jobshell.key_cache(settings()).material(str(host) for host in hosts)


def start(spec: LaunchSpec, keys: jobshell.KeyMaterial | None = None) -> dict[str, Any]:
    """Claim one job's directory and start its supervisor; what happened, for the task's result.

    ``keys`` is what the job keys of the same launch message share, read once for all of them.
    """
    host = node_hostname()
    if not isinstance(spec, dict) or any(spec.get(key) in (None, "") for key in REQUIRED):
        logger.error("launch on %s refused: incomplete spec %r", host, spec)
        return {"error": f"incomplete launch spec: needs {', '.join(REQUIRED)}"}
    keys = keys or _key_material([spec])
    job = _job(spec["job_id"])
    if not job.create():
        sent = reports.resend_last(app, job, host)
        logger.warning("job %s was already launched on %s: refused (re-sent %s)", job.job_id, host, sent)
        return {"job_id": job.job_id, "error": "already launched on this node", "resent": sent}
    try:
        job.write_new("owner", str(os.getpid()))
        job.write_new("spec.json", json_line(spec), mode=0o600)
        Supervisor(app, settings(), host, job, dict(spec), keys).start()
    except Exception as error:  # the job is claimed: the head must hear how it ended
        logger.exception("job %s could not be launched on %s", job.job_id, host)
        reports.job_ended(app, job, host, None, "launch_error", f"node error: {error}")
        return {"job_id": job.job_id, "error": str(error)}
    logger.info("job %s launched on %s", job.job_id, host)
    return {"job_id": job.job_id, "launched": True}


@app.task(name=Task.NODE_KILL, base=SignedTask)
def kill(job_id: int, grace: float | None = None) -> dict[str, Any]:
    """SIGTERM the job's group; its supervisor sends SIGKILL after ``grace`` seconds."""
    job = _job(job_id)
    if not job.exists() or job.status is not None:
        state = "unknown" if not job.exists() else "finished"
        logger.info("kill of job %s on %s: job %s", job_id, node_hostname(), state)
        return {"job_id": job.job_id, "killed": False, "state": state}
    pgid = job.pid
    job.request_kill(settings().kill_grace if grace is None else float(grace), signalled=pgid is not None)
    if pgid is not None:
        jobcontrol.terminate(pgid, jobcontrol.job_cgroup(job))
    logger.info("job %s on %s: kill requested", job_id, node_hostname())
    return {"job_id": job.job_id, "killed": True}


@app.task(name=Task.NODE_WALLTIME, base=SignedTask)
def walltime(job_id: int, walltime: int) -> dict[str, Any]:
    """The head granted the job a new walltime (``oarwalltime``): the backstop follows it."""
    job = _job(job_id)
    if not job.exists() or job.status is not None:
        return {"job_id": job.job_id, "changed": False}
    job.set_walltime(int(walltime))
    logger.info("job %s on %s: walltime now %s s", job_id, node_hostname(), walltime)
    return {"job_id": job.job_id, "changed": True}


def _running(job_id: int) -> tuple[JobDir, int | None]:
    """The job directory and the job's process group, None if the job is not running here."""
    job = _job(job_id)
    return job, (job.pid if job.status is None else None)


def _not_running(job: JobDir, verb: str) -> dict[str, Any]:
    return {"job_id": job.job_id, verb: False, "state": "finished" if job.status else "unknown"}


@app.task(name=Task.NODE_SIGNAL, base=SignedTask)
def signal_job(job_id: int, signum: int | str) -> dict[str, Any]:
    """Send a signal (number or name) to the job's process group."""
    job, pgid = _running(job_id)
    if pgid is None:
        return _not_running(job, "signalled")
    return {"job_id": job.job_id, "signalled": jobcontrol.send_signal(pgid, process.signal_number(signum))}


@app.task(name=Task.NODE_SUSPEND, base=SignedTask)
def suspend(job_id: int) -> dict[str, Any]:
    """Freeze the job (or stop it by signal); the backstop walltime clock stops with it."""
    job, pgid = _running(job_id)
    if pgid is None:
        return _not_running(job, "signalled")
    done = jobcontrol.suspend(pgid, jobcontrol.job_cgroup(job))
    if done:
        job.mark_suspended()
    return {"job_id": job.job_id, "signalled": done}


@app.task(name=Task.NODE_RESUME, base=SignedTask)
def resume(job_id: int) -> dict[str, Any]:
    """Thaw the job and tell the head, which moves it ``Resuming`` → ``Running``."""
    job, pgid = _running(job_id)
    if pgid is None:
        return _not_running(job, "signalled")
    done = jobcontrol.resume(pgid, jobcontrol.job_cgroup(job))
    if done:
        job.mark_resumed()
        reports.send(app, Task.JOB_RESUMED, {"job_id": int(job_id), "host": node_hostname()})
    return {"job_id": job.job_id, "signalled": done}


def job_states(job_ids: list[int]) -> dict[str, Any]:
    """``running``, ``unknown`` or the final status of each job, by job id (text, as JSON keys)."""
    states: dict[str, Any] = {}
    for job_id in job_ids:
        job = _job(job_id)
        states[str(job.job_id)] = job.status or ("running" if job.exists() else "unknown")
    return states


@app.task(name=Task.NODE_PING, base=SignedTask)
def ping(token: str, job_ids: list[int] | None = None) -> dict[str, Any]:
    """Finaud's health check: it proves this node's queue is consumed, and carries job states.

    The signed answer is pushed onto ``oar:finaud:answers``, which Finaud's
    next round takes in one batch: as a task, each of a thousand nodes'
    answers cost the head worker a task's dispatch. Where the list cannot be
    reached (another broker, Redis down) the answer goes as the
    ``oar.finaud.answer`` task, retried until sent.
    """
    jobs = job_states(job_ids or [])
    answer = {"host": node_hostname(), "token": token, "jobs": jobs}
    if not _push_answer(answer):
        reports.send(app, Task.FINAUD_ANSWER, answer)
    return jobs


def _push_answer(answer: dict[str, Any]) -> bool:
    """Push the signed answer onto Finaud's list; whether it was pushed."""
    if not str(app.conf.broker_url or "").startswith(("redis://", "rediss://", "unix://")):
        return False
    try:
        broker_redis().lpush(Key.FINAUD_ANSWERS, json.dumps(reports.signed(Task.FINAUD_ANSWER, answer)))
    except Exception as error:  # noqa: BLE001 - any failure: the answer goes as a task instead
        logger.warning("answer to Finaud not pushed (%s): sent as a task", error)
        return False
    return True


@worker_ready.connect
def _recover_orphans(**_: Any) -> None:
    if "OAR_NODE_HOSTNAME" in os.environ:
        recovery.recover(app, settings(), node_hostname())
        jobshell.start_service(settings(), node_hostname())
