"""Queue names, task names, Redis keys and Almighty's message names: one spelling each.

A queue or key named in two places drifts apart on the first rename; the
head, the nodes and the clients read them all from here.
"""

from __future__ import annotations

from enum import StrEnum

#: The queue the head worker consumes: every task whose name does not start with ``oar.node.``.
HEAD_QUEUE = "oar.head"


def node_queue(hostname: str) -> str:
    """The queue a compute node's worker consumes."""
    return f"oar.node.{hostname}"


class Task:
    """Every task name on the wire (all under ``oar.``, routed by that prefix): plain text constants."""

    SUBMIT = "oar.almighty.submit"
    SUBMIT_MANY = "oar.almighty.submit_many"
    NOTIFY = "oar.almighty.notify"
    CYCLE = "oar.almighty.cycle"
    DELETE = "oar.control.delete"
    HOLD = "oar.control.hold"
    RESUME = "oar.control.resume"
    BESTEFFORT = "oar.control.besteffort"
    FORCE_TERMINATE = "oar.control.force_terminate"
    NODE_SETTING = "oar.control.node_setting"
    REMOVE_RESOURCES = "oar.control.remove_resources"
    ADD_RESOURCES = "oar.control.add_resources"
    PROPERTY = "oar.control.property"
    QUEUE = "oar.control.queue"
    NOTIFY_TAG = "oar.control.notify_tag"
    ACCOUNTING = "oar.control.accounting"
    WALLTIME = "oar.control.walltime"
    JOB_KEY = "oar.control.job_key"
    REPORTS = "oar.head.reports"
    JOB_RUNNING = "oar.head.job_running"
    JOB_ENDED = "oar.head.job_ended"
    JOB_RESUMED = "oar.head.job_resumed"
    FINAUD_ANSWER = "oar.finaud.answer"
    JUDAS_NOTIFY = "oar.judas.notify"
    JUDAS_MAIL_ADMIN = "oar.judas.mail_admin"
    NODE_LAUNCH = "oar.node.launch"
    NODE_LAUNCH_MANY = "oar.node.launch_many"
    NODE_KILL = "oar.node.kill"
    NODE_SIGNAL = "oar.node.signal"
    NODE_SUSPEND = "oar.node.suspend"
    NODE_RESUME = "oar.node.resume"
    NODE_PING = "oar.node.ping"
    NODE_WALLTIME = "oar.node.walltime"


class Message(StrEnum):
    """Almighty's messages: what happened, from which the cycle chooses the modules to run."""

    QSUB = "Qsub"
    TERM = "Term"
    REPORTS = "Reports"
    SCHEDULING = "Scheduling"
    QRESUME = "Qresume"
    QHOLD = "Qhold"
    QDEL = "Qdel"
    CHSTATE = "ChState"
    VILLAINS = "Villains"
    FINAUD = "Finaud"


class Key:
    """Redis keys (the broker's database); per-job keys are built by the functions below."""

    PENDING = "oar:almighty:pending"
    QUEUED = "oar:almighty:queued"
    LOCK = "oar:almighty:lock"
    LAST_SCHEDULER_RUN = "oar:almighty:last_scheduler"
    DELAYED = "oar:almighty:delayed"
    CYCLES = "oar:almighty:cycles"
    #: Histogram counts of cycle and module durations, ``<name>|<le>`` and ``<name>|sum`` (never trimmed).
    DURATIONS = "oar:almighty:durations"
    #: A hash: node name → where its job-shell service listens, ``{"address", "port"}`` (JSON).
    JOBSHELL_SERVICES = "oar:jobshell:services"
    #: The node report batches waiting for a cycle (JSON lists of reports).
    QUEUED_REPORTS = "oar:reports"
    FINAUD_SENT = "oar:finaud:sent"
    #: The nodes' signed answers to Finaud's pings (JSON task kwargs), taken by its next round in one batch.
    FINAUD_ANSWERS = "oar:finaud:answers"
    FINAUD_ANSWERED = "oar:finaud:answered"
    #: Nodes whose last judged ping went unanswered (until they answer one), for ``oar-celery status``.
    FINAUD_MISSED = "oar:finaud:missed"
    #: Counters of refused messages, field ``<kind>:<origin>`` (nodes may only HINCRBY it).
    REFUSED = "oar:refused"


def unacked_keys(hostname: str) -> tuple[str, str, str]:
    """Kombu's unacknowledged-message keys of one node (hash, index, mutex): no node reads another's."""
    return f"oar:unacked:{hostname}", f"oar:unacked_index:{hostname}", f"oar:unacked_mutex:{hostname}"


#: Upper bounds (seconds) of the duration histograms' buckets: Almighty counts, the metrics read.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def duration_bucket(seconds: float) -> str:
    """The label of the smallest bucket holding ``seconds`` (``+Inf`` past the last bound)."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def reply_key(job_id: int, token: str) -> str:
    """The list where the Runner pushes its answer to the ``oarsub`` waiting for the job.

    ``token`` is the job's reply token, which only the head and the submitter
    (in its submission's answer) know: users may read any ``oar:reply:*:*`` on
    the broker, so the name is what keeps the answer the submitter's.
    """
    return f"oar:reply:{job_id}:{token}"


def client_key(job_id: int, token: str) -> str:
    """Set while an ``oarsub`` waits for the job's start or reservation (the client's heartbeat)."""
    return f"oar:client:{job_id}:{token}"


def launch_key(job_id: int) -> str:
    """Set while a launch is recent: the Runner sends it again only once this has expired."""
    return f"oar:launch:{job_id}"


def resume_key(job_id: int) -> str:
    """Spaces the resends of a resume to a job that stays ``Resuming``."""
    return f"oar:resume:{job_id}"


def nonce_key(nonce: str) -> str:
    """Marks a request credential as used, so that a replay is refused."""
    return f"oar:auth:nonce:{nonce}"


def seen_key(host: str, nonce: str) -> str:
    """Marks a signed message under ``host``'s key as received (``SET NX EX``), so that a replay is refused.

    Both directions of a node's messages are signed with that node's key, so
    both record their nonces under its name: a node writes only its own.
    """
    return f"oar:seen:{host}:{nonce}"


def result_key(task_id: str) -> str:
    """Where Celery's Redis backend stores, and publishes, a task's result."""
    return f"celery-task-meta-{task_id}"
