"""OAR's tables as SQLAlchemy 2 typed models.

Table and column names follow OAR 2.5 / OAR3 so that an OAR admin finds their
way: ``jobs.job_id``, ``resources.network_address``, ``frag_jobs.frag_state``.
Times are seconds since the epoch, kept as floats so that sub-second ordering
(a job ending and the next starting on the same core) stays visible.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from oar_celery.protocol.states import (  # noqa: F401 - the state groups, also read from here
    ACTIVE_STATES,
    CURRENT_STATES,
    FINAL_STATES,
    STARTED_STATES,
    FragState,
    JobState,
    ResourceState,
)

#: Every state, for the check constraints and the state counts (the states are protocol.states').
JOB_STATES = tuple(JobState)
RESOURCE_STATES = tuple(ResourceState)
FRAG_STATES = tuple(FragState)


class Base(DeclarativeBase):
    pass


_RESERVATIONS = "reservation <> 'None'"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_user", "job_user"),
        Index("ix_jobs_array", "array_id"),
        # the jobs that ended after a date: the Gantt's window and the API's ``from``
        Index("ix_jobs_stop_time", "stop_time"),
        # the quick round's first waiting jobs of each queue, in submission order
        Index(
            "ix_jobs_waiting", "queue_name", "submission_time", "job_id",
            postgresql_where=text("state = 'Waiting'"), sqlite_where=text("state = 'Waiting'"),
        ),
        # the advance reservations (to answer, or accepted): every cycle looks for them among the waiting jobs
        Index(
            "ix_jobs_reservations", "reservation", "state",
            postgresql_where=text(_RESERVATIONS), sqlite_where=text(_RESERVATIONS),
        ),
        # room on each page for rows rewritten in place (migration 0009)
        {"postgresql_with": {"fillfactor": 70}},
    )

    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    array_id: Mapped[int] = mapped_column(Integer, default=0)
    array_index: Mapped[int] = mapped_column(Integer, default=1)
    initial_request: Mapped[str] = mapped_column(Text, default="")
    job_name: Mapped[str | None] = mapped_column(String(255))
    job_env: Mapped[str | None] = mapped_column(Text)
    job_type: Mapped[str] = mapped_column(String(16), default="PASSIVE")
    info_type: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=JobState.WAITING)
    reservation: Mapped[str] = mapped_column(String(16), default="None")
    message: Mapped[str] = mapped_column(Text, default="")
    scheduler_info: Mapped[str] = mapped_column(Text, default="")
    job_user: Mapped[str] = mapped_column(String(255), default="")
    project: Mapped[str] = mapped_column(String(255), default="default")
    job_group: Mapped[str] = mapped_column(String(255), default="")
    command: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer)
    queue_name: Mapped[str] = mapped_column(String(100), default="default")
    properties: Mapped[str | None] = mapped_column(Text)
    launching_directory: Mapped[str] = mapped_column(Text, default="")
    submission_time: Mapped[float] = mapped_column(Float, default=0.0)
    start_time: Mapped[float] = mapped_column(Float, default=0.0)
    stop_time: Mapped[float] = mapped_column(Float, default=0.0)
    notify: Mapped[str | None] = mapped_column(String(255))
    assigned_moldable_job: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_signal: Mapped[int] = mapped_column(Integer, default=12)
    stdout_file: Mapped[str | None] = mapped_column(Text)
    stderr_file: Mapped[str | None] = mapped_column(Text)
    resubmit_job_id: Mapped[int] = mapped_column(Integer, default=0)
    suspended: Mapped[str] = mapped_column(String(3), default="NO")
    suspended_time: Mapped[float] = mapped_column(Float, default=0.0)
    launch_host: Mapped[str | None] = mapped_column(String(255))
    #: ``YES`` once the job's usage is in ``accounting`` (OAR's flag, read by ``oaraccounting``).
    accounted: Mapped[str] = mapped_column(String(3), default="NO", server_default="NO")
    #: The fair-share karma the job had when the scheduler started it (OAR3's column; none when off).
    last_karma: Mapped[float | None] = mapped_column(Float)


class MoldableJobDescription(Base):
    __tablename__ = "moldable_job_descriptions"
    __table_args__ = (Index("ix_moldable_job", "moldable_job_id"),)

    moldable_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    moldable_job_id: Mapped[int] = mapped_column(ForeignKey("jobs.job_id", ondelete="CASCADE"))
    moldable_walltime: Mapped[int] = mapped_column(Integer, default=0)
    moldable_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class JobResourceGroup(Base):
    __tablename__ = "job_resource_groups"
    __table_args__ = (Index("ix_res_group_moldable", "res_group_moldable_id"),)

    res_group_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    res_group_moldable_id: Mapped[int] = mapped_column(
        ForeignKey("moldable_job_descriptions.moldable_id", ondelete="CASCADE")
    )
    res_group_property: Mapped[str | None] = mapped_column(Text)
    res_group_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class JobResourceDescription(Base):
    __tablename__ = "job_resource_descriptions"

    res_job_group_id: Mapped[int] = mapped_column(
        ForeignKey("job_resource_groups.res_group_id", ondelete="CASCADE"), primary_key=True
    )
    res_job_resource_type: Mapped[str] = mapped_column(String(255), primary_key=True)
    res_job_order: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    res_job_value: Mapped[int] = mapped_column(Integer, default=0)
    res_job_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (
        Index("ix_resources_network_address", "network_address"),
        Index("ix_resources_state", "state"),
    )

    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(100), default="default")
    network_address: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(9), default=ResourceState.ALIVE)
    next_state: Mapped[str] = mapped_column(String(9), default="UnChanged")
    finaud_decision: Mapped[str] = mapped_column(String(3), default="NO")
    next_finaud_decision: Mapped[str] = mapped_column(String(3), default="NO")
    state_num: Mapped[int] = mapped_column(Integer, default=0)
    suspended_jobs: Mapped[str] = mapped_column(String(3), default="NO")
    scheduler_priority: Mapped[int] = mapped_column(Integer, default=0)
    cpuset: Mapped[str] = mapped_column(String(255), default="0")
    besteffort: Mapped[str] = mapped_column(String(3), default="YES")
    deploy: Mapped[str] = mapped_column(String(3), default="NO")
    expiry_date: Mapped[float] = mapped_column(Float, default=0.0)
    desktop_computing: Mapped[str] = mapped_column(String(3), default="NO")
    last_job_date: Mapped[float] = mapped_column(Float, default=0.0)
    available_upto: Mapped[float] = mapped_column(Float, default=2147483647.0)
    last_available_upto: Mapped[float] = mapped_column(Float, default=0.0)
    drain: Mapped[str] = mapped_column(String(3), default="NO")
    state_since: Mapped[float] = mapped_column(Float, default=0.0)
    host: Mapped[str | None] = mapped_column(String(255))
    cpu: Mapped[int | None] = mapped_column(Integer)
    core: Mapped[int | None] = mapped_column(Integer)
    switch: Mapped[str | None] = mapped_column(String(255))
    mem: Mapped[int | None] = mapped_column(Integer)


class ResourceLog(Base):
    __tablename__ = "resource_logs"
    __table_args__ = (Index("ix_resource_logs_resource", "resource_id"),)

    resource_log_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(Integer)
    attribute: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    date_start: Mapped[float] = mapped_column(Float, default=0.0)
    date_stop: Mapped[float] = mapped_column(Float, default=0.0)
    finaud_decision: Mapped[str] = mapped_column(String(3), default="NO")


class AssignedResource(Base):
    __tablename__ = "assigned_resources"
    __table_args__ = (Index("ix_assigned_resource", "resource_id", "assigned_resource_index"),)

    moldable_job_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assigned_resource_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class Queue(Base):
    __tablename__ = "queues"

    queue_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    scheduler_policy: Mapped[str] = mapped_column(String(100), default="kamelot")
    state: Mapped[str] = mapped_column(String(9), default="Active")


class JobType(Base):
    __tablename__ = "job_types"
    __table_args__ = (Index("ix_job_types_job", "job_id"),)

    job_type_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.job_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(255))
    types_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class JobDependency(Base):
    __tablename__ = "job_dependencies"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True)
    job_id_required: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_dependency_index: Mapped[str] = mapped_column(String(7), default="CURRENT")


class JobStateLog(Base):
    __tablename__ = "job_state_logs"
    __table_args__ = (Index("ix_job_state_logs_job", "job_id"),)

    job_state_log_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer)
    job_state: Mapped[str] = mapped_column(String(16))
    date_start: Mapped[float] = mapped_column(Float, default=0.0)
    date_stop: Mapped[float] = mapped_column(Float, default=0.0)


class EventLog(Base):
    __tablename__ = "event_logs"
    __table_args__ = (Index("ix_event_logs_job", "job_id"), Index("ix_event_logs_check", "to_check"))

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[int] = mapped_column(Integer, default=0)
    date: Mapped[float] = mapped_column(Float, default=0.0)
    description: Mapped[str] = mapped_column(Text, default="")
    to_check: Mapped[str] = mapped_column(String(3), default="NO")


class EventLogHostname(Base):
    __tablename__ = "event_log_hostnames"

    event_id: Mapped[int] = mapped_column(ForeignKey("event_logs.event_id", ondelete="CASCADE"), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)


class FragJob(Base):
    __tablename__ = "frag_jobs"
    __table_args__ = (Index("ix_frag_jobs_state", "frag_state"),)

    frag_id_job: Mapped[int] = mapped_column(Integer, primary_key=True)
    frag_date: Mapped[float] = mapped_column(Float, default=0.0)
    frag_state: Mapped[str] = mapped_column(String(16), default=FragState.LEON)


class GanttJobPrediction(Base):
    __tablename__ = "gantt_jobs_predictions"

    moldable_job_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_time: Mapped[float] = mapped_column(Float, default=0.0)


class GanttJobResource(Base):
    __tablename__ = "gantt_jobs_resources"

    moldable_job_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class JobSubmission(Base):
    """A client's submission, by the id the client chose: a retried submission is answered, not inserted again."""

    __tablename__ = "job_submissions"

    submission_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_ids: Mapped[str] = mapped_column(Text, default="[]")
    submitted_at: Mapped[float] = mapped_column(Float, default=0.0)


class AdmissionRule(Base):
    __tablename__ = "admission_rules"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[str] = mapped_column(String(3), default="YES")
    rule: Mapped[str] = mapped_column(Text, default="")


class Accounting(Base):
    """OAR's usage windows: core-seconds ``ASKED`` (walltime) and ``USED`` per user, project, queue and window."""

    __tablename__ = "accounting"
    __table_args__ = (Index("ix_accounting_window_stop", "window_stop"),)

    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    window_stop: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    accounting_user: Mapped[str] = mapped_column(String(255), primary_key=True)
    accounting_project: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    consumption_type: Mapped[str] = mapped_column(String(5), primary_key=True)
    consumption: Mapped[int] = mapped_column(BigInteger, default=0)


class WalltimeChange(Base):
    """A running job's walltime change request (``oarwalltime``): ``pending`` seconds, ``granted`` so far."""

    __tablename__ = "walltime_change"

    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    force: Mapped[str] = mapped_column(String(3), default="NO")
    delay_next_jobs: Mapped[str] = mapped_column(String(3), default="NO")
    granted: Mapped[int] = mapped_column(Integer, default=0)
    granted_with_force: Mapped[int] = mapped_column(Integer, default=0)
    granted_with_delay_next_jobs: Mapped[int] = mapped_column(Integer, default=0)


DEFAULT_QUEUES = (("admin", 10), ("default", 2), ("besteffort", 0))
