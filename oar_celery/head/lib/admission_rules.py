"""OAR3's default admission rules that this project follows (``etc/oar/admission_rules.d``).

Each rule is a short pure function raising :class:`RequestError` with the
line the user sees; :mod:`oar_celery.admission` calls them in order.
"""

from __future__ import annotations

import grp

from oar_celery.config import Settings
from oar_celery.scheduler.errors import RequestError

#: OAR3's rule 04: the group whose members (with the admin user) may use the ``admin`` queue.
ADMIN_GROUP = "admin"


def in_group(user: str, group: str) -> bool:
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


def check_admin_queue(queue: str, user: str, config: Settings) -> None:
    """Rule 04: only the admin user (or root) and members of group ``admin`` submit to queue ``admin``."""
    if queue == "admin" and not (config.is_admin(user) or in_group(user, ADMIN_GROUP)):
        raise RequestError(f"only member of the group {ADMIN_GROUP} can submit jobs in the admin queue")


def check_besteffort_reservation(types: list[str], reservation: object) -> None:
    """Rule 07: a job cannot both be of type besteffort and be a reservation."""
    if reservation and "besteffort" in types:
        raise RequestError("a job cannot both be of type besteffort and be a reservation")


def reservation_start(start: float, walltimes: list[int], *, at: float) -> float:
    """A reservation's start: kept if it is still running at ``at``, refused only when entirely over.

    OAR3 keeps the asked start: a reservation whose start is past but whose
    walltime is not over is granted and starts at once, for what remains of it.
    """
    if start + max(walltimes or [0]) <= at:
        raise RequestError("the reservation is entirely in the past (its start plus its walltime is over)")
    return start
