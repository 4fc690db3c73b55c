"""Judas: notifications to users and the admin (the logging half of OAR's Judas is :mod:`oar_celery.logs`).

Notifications (``oarsub --notify``) are ``[TAGS]mail:address`` or
``[TAGS]exec:/path/script args``. A failed notification is logged and
recorded as an event; it never changes the job's fate.

Sending happens in Celery tasks on ``oar.head`` (``oar.judas.notify``,
``oar.judas.mail_admin``), never inline: a slow SMTP server or a slow user
script must not delay the job reports or Almighty's cycle that asked for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import smtplib
import socket
import subprocess
from email.message import EmailMessage

from oar_celery.config import settings
from oar_celery.head.lib import sender
from oar_celery.protocol.names import Task
from oar_celery.protocol.notify_method import parse_notify
from oar_celery.scheduler.errors import RequestError

logger = logging.getLogger("oar")

def send_mail(recipient: str, subject: str, body: str, job_id: int = 0) -> None:
    """Send one mail through the configured SMTP server; raises OSError on failure."""
    config = settings()
    message = EmailMessage()
    message["From"] = config.mail_sender
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.notify_timeout) as smtp:
        smtp.send_message(message)
    logger.info("mail sent to %s for job %s: %s", recipient, job_id, subject)


def mail_admin(subject: str, body: str) -> None:
    """Tell the admin (``OAR_ADMIN_MAIL``), if one is configured, from a task; never raises."""
    if not settings().admin_mail:
        return
    try:
        sender.send([sender.to_head(Task.JUDAS_MAIL_ADMIN, subject=subject, body=body)])
    except Exception as error:  # noqa: BLE001 - a broker hiccup must not fail the caller's work
        logger.error("mail to the admin could not be queued: %s", error)


def mail_admin_task(subject: str, body: str) -> None:
    recipient = settings().admin_mail
    if not recipient:
        return
    try:
        send_mail(recipient, subject, body)
    except (OSError, smtplib.SMTPException) as error:
        logger.error("mail to the admin failed: %s", error)


def wanted_tags(method_text: str) -> tuple[str, ...] | None:
    """The events a job's ``--notify`` asks for; None if it cannot be read."""
    try:
        return parse_notify(method_text).tags
    except RequestError:
        return None


def notify_user(
    method_text: str, host: str, user: str, job_id: int, job_name: str, tag: str, comment: str
) -> None:
    """OAR's notify_user: mail the user or run their script, as them. Raises on failure."""
    try:
        notify = parse_notify(method_text)
    except RequestError as error:
        raise ValueError(str(error)) from None
    if notify.method == "mail":
        subject = f"*OAR* [{tag}]: {job_id} ({job_name}) on {host}"
        send_mail(notify.target, subject, f"{comment}\n", job_id)
        return
    run_as(user, [*shlex.split(notify.target), str(job_id), job_name, tag, comment])


def run_as(user: str, argv: list[str]) -> None:
    """Run a notification script as ``user`` (never as root for another user), bounded in time.

    The script gets a minimal environment (the head's holds the database and
    broker credentials) and a session of its own, so that on timeout its
    whole process group is killed, not just the shell that started it.
    """
    from oar_celery.accounts import lookup_account

    account = lookup_account(user)
    if account is None:
        raise KeyError(f"user {user} is unknown here")
    if os.geteuid() != 0 and account.uid != os.geteuid():
        raise PermissionError(f"cannot run a script as {user} from a process that is not root")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": account.home, "USER": user, "LOGNAME": user}
    process = subprocess.Popen(  # type: ignore[call-overload]
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/", env=env,
        start_new_session=True, **account.popen_identity(),
    )
    try:
        _, errors = process.communicate(timeout=settings().notify_timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    if process.returncode:
        said = errors.decode(errors="replace").strip().splitlines()
        raise subprocess.CalledProcessError(process.returncode, argv[0], stderr=said[-1] if said else "")


def notify_later(job_id: int, method: str | None, tag: str, comment: str) -> None:
    """Queue the job's notification for ``tag`` if its ``--notify`` asked for it; never raises.

    The caller passes the job's ``notify`` column, which it has at hand, so
    that jobs without notifications (most) cost no message at all.
    """
    tags = wanted_tags(method) if method else None
    if tags is None or tag not in tags:
        return
    try:
        sender.send([sender.to_head(Task.JUDAS_NOTIFY, job_id=job_id, tag=tag, comment=comment)])
    except Exception as error:  # noqa: BLE001 - the job's fate never depends on its notification
        logger.error("job %s: notification %s could not be queued: %s", job_id, tag, error)


def notify_task(job_id: int, tag: str, comment: str) -> None:
    notify_job(job_id, tag, comment)


def notify_job(job_id: int, tag: str, comment: str) -> None:
    """Send the job's notification for ``tag`` if it asked for one; failures become events."""
    from oar_celery.db.models import Job
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.hosts import job_hosts

    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or not job.notify:
            return
        method, user, name = job.notify, job.job_user, job.job_name or ""
        hosts = job_hosts(session, [job_id]).get(job_id) or [job.launch_host or ""]
        host = hosts[0]  # OAR names the job's first node
    tags = wanted_tags(method)
    if tags is None or tag not in tags:
        return
    try:
        notify_user(method, host or socket.gethostname(), user, job_id, name, tag, comment)
    except (OSError, ValueError, smtplib.SMTPException, subprocess.SubprocessError, KeyError) as error:
        record_failure(job_id, method, tag, error)


def record_failure(job_id: int, method: str, tag: str, error: BaseException) -> None:
    """Log a failed notification and keep it as the job's event."""
    from oar_celery.db.session import session_scope
    from oar_celery.head.lib.transitions import add_event

    said = str(error).strip().splitlines()
    text = f"notification {tag} failed: {said[0] if said else type(error).__name__}"
    if isinstance(error, subprocess.CalledProcessError) and error.stderr:
        text += f" ({error.stderr})"
    logger.error("job %s: %s", job_id, text)
    mail = method.split(":", 1)[0].endswith("mail")
    kind = "USER_MAIL_NOTIFICATION" if mail else "USER_EXEC_NOTIFICATION"
    with session_scope() as session:
        add_event(session, kind, job_id, text)
