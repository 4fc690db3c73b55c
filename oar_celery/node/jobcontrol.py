"""Acting on a running job: signals, kills, suspension and the final cleanup.

A job is reached two ways. Its process group (its keeper's pid) gets the
signals a job is meant to see (SIGTERM of a kill, ``oardel -s``, the
checkpoint signal): the keeper catches them and lives on to record the exit
status. Its cgroup, where the node has one, reaches every process the job
started, even those that left its session: the freezer suspends them all at
once, and the end of the job kills whatever is left, the keeper spared until
it has written the status. Without a cgroup both fall back to the process
group (SIGSTOP/SIGCONT, SIGKILL).
"""

from __future__ import annotations

import signal

from oar_celery.node import process
from oar_celery.node.cgroup import JobCgroup
from oar_celery.node.jobdir import JobDir


def job_cgroup(job: JobDir) -> JobCgroup | None:
    """The cgroup recorded for ``job``, None if it runs without one."""
    return JobCgroup.from_text(job.cgroup_text)


def send_signal(pgid: int, signum: int) -> bool:
    """A signal for the job itself, through its process group; False if the group is gone."""
    return process.signal_group(pgid, signum)


def terminate(pgid: int, cgroup: JobCgroup | None) -> bool:
    """SIGTERM to the job's group and every process of its cgroup, then let a suspended job see it."""
    alive = process.signal_group(pgid, signal.SIGTERM)
    if cgroup is not None:
        alive = cgroup.signal(signal.SIGTERM, spare=pgid) > 0 or alive
        if cgroup.frozen():
            cgroup.thaw()
    process.signal_group(pgid, signal.SIGCONT)
    return alive


def kill_hard(pgid: int, cgroup: JobCgroup | None) -> None:
    """SIGKILL every process of the job but its keeper (which then records the status)."""
    if cgroup is not None:
        cgroup.kill_all(spare=pgid)
    else:
        process.signal_group(pgid, signal.SIGKILL)


def suspend(pgid: int, cgroup: JobCgroup | None) -> bool:
    """Freeze the job's cgroup; without a freezer, SIGSTOP its group and cgroup."""
    if cgroup is not None and cgroup.freeze():
        return True
    stopped = process.signal_group(pgid, signal.SIGSTOP)
    if cgroup is not None:
        stopped = cgroup.signal(signal.SIGSTOP) > 0 or stopped
    return stopped


def resume(pgid: int, cgroup: JobCgroup | None) -> bool:
    """Thaw the job's cgroup (and SIGCONT, for a job stopped by signal)."""
    thawed = cgroup is not None and cgroup.frozen() and cgroup.thaw()
    continued = process.signal_group(pgid, signal.SIGCONT)
    if cgroup is not None:
        continued = cgroup.signal(signal.SIGCONT) > 0 or continued
    return bool(thawed or continued)


def clean_up(pgid: int | None, cgroup: JobCgroup | None) -> bool:
    """After the job's end: kill what it left behind and remove its cgroup; False if some process resisted."""
    if pgid is not None:
        process.signal_group(pgid, signal.SIGKILL)
    if cgroup is None:
        return True
    return cgroup.remove()
