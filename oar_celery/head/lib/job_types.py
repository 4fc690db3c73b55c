"""What a job's types ask of the cluster, checked at submission whatever the admission rules say.

The rules (:mod:`.rules`) say which types a site accepts; this module makes
sure the ones the scheduler and the Runner act on can be honoured: an inner
job names a container of its own user that has not ended, a token exists and
the job does not ask for more than the cluster has, cosystem and deploy jobs
have a host to run on.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from oar_celery.config import Settings
from oar_celery.db.models import Job, JobType
from oar_celery.protocol.states import CURRENT_STATES, FINAL_STATES
from oar_celery.scheduler.errors import RequestError
from oar_celery.scheduler.tokens import parse_tokens, token_requests


def check(session: Session, user: str, types: Sequence[str], config: Settings) -> None:
    """Refuse, with one line, types the cluster cannot honour."""
    for kind in types:
        name, _, value = kind.partition("=")
        if name == "inner":
            _check_container(session, user, value, config)
        elif name in ("cosystem", "deploy") and not _host_for(name, config):
            raise RequestError(f"{name} jobs are not available: OAR_{name.upper()}_HOSTNAME is not set")
    wanted = token_requests(dict(kind.partition("=")[::2] for kind in types))
    if wanted:
        available = parse_tokens(config.tokens)
        for token, count in wanted.items():
            if token not in available:
                raise RequestError(f"unknown token '{token}' (configured: {', '.join(available) or 'none'})")
            if count > available[token]:
                raise RequestError(f"token:{token}={count} asks for more than the {available[token]} the cluster has")


def _host_for(kind: str, config: Settings) -> str:
    return config.cosystem_hostname if kind == "cosystem" else config.deploy_hostname


def _check_container(session: Session, user: str, value: str, config: Settings) -> None:
    """``inner=ID`` names a container job, ``inner=NAME`` the live jobs of type ``container=NAME``."""
    if value.isdigit():
        _check_container_job(session, user, value, config)
        return
    owners = set(session.scalars(
        select(Job.job_user).join(JobType, JobType.job_id == Job.job_id)
        .where(JobType.type == f"container={value}", JobType.types_index == "CURRENT", Job.state.in_(CURRENT_STATES))
    ))
    if not owners:
        raise RequestError(f"inner={value}: no container named {value} (-t container={value}) is waiting or running")
    if owners != {user} and not config.is_admin(user):
        raise RequestError(f"inner={value}: the container belongs to another user")


def _check_container_job(session: Session, user: str, value: str, config: Settings) -> None:
    row = session.execute(select(Job.job_user, Job.state).where(Job.job_id == int(value))).first()
    if row is None:
        raise RequestError(f"inner={value}: job {value} does not exist")
    kinds = session.scalars(select(JobType.type).where(JobType.job_id == int(value), JobType.types_index == "CURRENT"))
    if not any(kind == "container" or kind.startswith("container=") for kind in kinds):
        raise RequestError(f"inner={value}: job {value} is not a container (-t container)")
    if row.job_user != user and not config.is_admin(user):
        raise RequestError(f"inner={value}: the container belongs to another user")
    if row.state in FINAL_STATES:
        raise RequestError(f"inner={value}: the container has ended")
