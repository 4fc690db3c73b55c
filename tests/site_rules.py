"""A site's admission rules, as an admin would write them: configured with OAR_ADMISSION_RULES=tests.site_rules."""

from __future__ import annotations

from oar_celery.head.lib.rules import Candidate
from oar_celery.scheduler.errors import RequestError


def rule_retry_is_idempotent(job: Candidate) -> None:
    """Jobs named retry-* are resubmitted when their node fails."""
    if (job.name or "").startswith("retry-") and "idempotent" not in job.types:
        job.types.append("idempotent")


def rule_closed_project(job: Candidate) -> None:
    """The project 'closed' takes no more jobs."""
    if job.project == "closed":
        raise RequestError("project 'closed' takes no more jobs")


def rule_crashes(job: Candidate) -> None:
    if job.project == "crash":
        raise ValueError("a bug in the rule\nsecond line")
