"""Resources as the scheduler sees them, and adding them to the cluster.

Resource properties are columns of ``resources``, as in OAR: ``oarproperty -a``
adds a column, so the table is reflected rather than taken from the model,
and every column is a property a filter may name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    Numeric,
    Result,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from oar_celery.config import Settings
from oar_celery.db.columns import column_kinds as kinds_of
from oar_celery.db.models import Resource
from oar_celery.db.session import execute
from oar_celery.protocol.states import ResourceState
from oar_celery.scheduler import types as sched
from oar_celery.scheduler.errors import RequestError

#: Columns that belong to OAR's bookkeeping, not to the resource's description.
SYSTEM_COLUMNS = frozenset(
    {
        "next_state", "finaud_decision", "next_finaud_decision", "state_num", "suspended_jobs",
        "scheduler_priority", "cpuset", "last_job_date", "last_available_upto", "state_since",
    }
)
#: Requested states that take a resource out of scheduling at once.
PENDING_WITHDRAWALS = (ResourceState.ABSENT, ResourceState.DEAD, ResourceState.SUSPECTED)
_reflected: dict[str, tuple[str, Table]] = {}

#: The table's columns and their types in one catalog query, so that every process sees ``oarproperty`` at once.
_PG_COLUMNS = (
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'resources'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
)
_SQLITE_SIGNATURE = "SELECT group_concat(name) FROM pragma_table_info('resources')"


def _pg_type(name: str) -> TypeEngine[Any]:
    """A catalog type name → the type reflection would give, as far as properties care (int, float, str)."""
    if name in ("integer", "smallint"):
        return Integer()
    if name == "bigint":
        return BigInteger()
    if name in ("double precision", "real"):
        return Float()
    if name.startswith("numeric"):
        return Numeric()
    if name == "boolean":
        return Boolean()
    return String()


def _table_from_catalog(columns: Sequence[tuple[str, str]]) -> Table:
    """The table built from catalog rows: SQLAlchemy's reflection (a dozen catalog queries,
    40 ms) was most of the first scheduling round of every process."""
    return Table(
        "resources",
        MetaData(),
        *(Column(name, _pg_type(kind), primary_key=name == "resource_id") for name, kind in columns),
    )


def resources_table(session: Session) -> Table:
    """The ``resources`` table with every property column, built again when its columns change."""
    bind = session.get_bind()
    key = str(bind.engine.url)
    cached = _reflected.get(key)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        columns = [(str(name), str(kind)) for name, kind in session.execute(text(_PG_COLUMNS))]
        signature = ",".join(f"{name} {kind}" for name, kind in columns)
        if cached and cached[0] == signature:
            return cached[1]
        table = _table_from_catalog(columns)
    else:
        signature = str(session.execute(text(_SQLITE_SIGNATURE)).scalar()) if dialect == "sqlite" else ""
        if cached and signature and cached[0] == signature:
            return cached[1]
        table = Table("resources", MetaData(), autoload_with=session.connection())
    _reflected[key] = (signature, table)
    return table


def has_property(session: Session, name: str) -> bool:
    """Whether ``resources`` has the column ``name``, as of this process's last look at the table.

    Every scheduling round looks again (:func:`resources_table`), so the
    Runner, which follows a round, asks without another catalog query.
    """
    cached = _reflected.get(str(session.get_bind().engine.url))
    table = cached[1] if cached else resources_table(session)
    return name in table.c


def forget_columns() -> None:
    """Reflect again on next use (after ``oarproperty`` changed the table)."""
    _reflected.clear()
    _described.clear()


def column_kinds(table: Table) -> dict[str, str]:
    """Property name → ``int``, ``float`` or ``str``, for the filter compiler."""
    return kinds_of(table, skip=SYSTEM_COLUMNS)


def scheduling_state(row: Mapping[str, Any]) -> str:
    """The state the scheduler sees: only ``Alive`` resources get jobs.

    A drained resource (``-d on``) shows ``Draining``; one with a pending
    ``Absent``/``Dead``/``Suspected`` request shows that state already, so
    that no new job lands on a node an admin is withdrawing while its running
    jobs finish.
    """
    if row["next_state"] in PENDING_WITHDRAWALS:
        return str(row["next_state"])
    if row["drain"] == "YES" and row["state"] == ResourceState.ALIVE:
        return "Draining"
    return str(row["state"])


def admission_state(state: str) -> str:
    """For "could this request ever run here": a drained resource will come back, like an absent one."""
    return ResourceState.ABSENT if state == "Draining" else state


#: Every resource with every column it has now, as the result's description tells (PostgreSQL).
_EVERY_RESOURCE = text("SELECT * FROM resources ORDER BY resource_id")
#: By database: the last description of :data:`_EVERY_RESOURCE`'s result (names, type codes) and its table.
_described: dict[str, tuple[tuple[tuple[str, int], ...], Table]] = {}


def load_resources(session: Session) -> tuple[list[sched.Resource], dict[str, str]]:
    """Every resource with its properties, ordered by id, and the column kinds.

    On PostgreSQL the rows come with their columns' names and types, so the catalog is read again
    (:func:`resources_table`) only when they changed: every round sees ``oarproperty`` at once, without
    a catalog query of its own.
    """
    if session.get_bind().dialect.name != "postgresql":
        table = resources_table(session)
        return _resources_of(session.execute(select(table).order_by(table.c.resource_id))), column_kinds(table)
    result = execute(session, _EVERY_RESOURCE)
    signature = tuple((str(column[0]), int(column[1])) for column in result.cursor.description)
    key = str(session.get_bind().engine.url)
    known = _described.get(key)
    if known is None or known[0] != signature:
        known = _described[key] = (signature, resources_table(session))
    return _resources_of(result), column_kinds(known[1])


def _resources_of(result: Result[Any]) -> list[sched.Resource]:
    # rows zipped with the column names: ``RowMapping`` access cost a third of the load
    names = tuple(result.keys())
    return [_resource(dict(zip(names, row, strict=True))) for row in result]


def _resource(row: dict[str, Any]) -> sched.Resource:
    return sched.Resource(
        id=row["resource_id"],
        network_address=row["network_address"],
        state=scheduling_state(row),
        properties=row,
        available_upto=int(row["available_upto"] or 0),
    )


def check_against_cluster(
    session: Session, moldables: Sequence[sched.Moldable], properties: str | None, config: Settings
) -> None:
    """Refuse a request that no alternative could ever satisfy on this cluster."""
    from oar_celery.scheduler import check_satisfiable

    resources, columns = load_resources(session)
    resources = [replace(r, state=admission_state(r.state)) for r in resources]
    problem = check_satisfiable(
        moldables, resources, properties, columns=columns, hierarchy_labels=config.labels
    )
    if problem:
        raise RequestError(problem)


def expand_nodeset(pattern: str) -> list[str]:
    """``node[1-4]`` → ``node1 .. node4``, with ClusterShell's nodeset syntax."""
    from ClusterShell.NodeSet import NodeSet, NodeSetParseError

    try:
        return list(NodeSet(pattern))
    except NodeSetParseError as error:
        raise RequestError(f"bad nodeset '{pattern}': {error}") from None


def known_hosts(session: Session, hosts: Sequence[str]) -> list[str]:
    """Those of ``hosts`` that already have resources, in the given order."""
    found = set(session.scalars(select(Resource.network_address).where(Resource.network_address.in_(list(hosts)))))
    return [host for host in hosts if host in found]


def add_resources(
    session: Session,
    hosts: Sequence[str],
    *,
    cpus: int = 1,
    cores: int = 1,
    properties: Mapping[str, Any] | None = None,
    node_cpus: int | None = None,
) -> list[int]:
    """One resource per core of every host: cpu and core numbered across the cluster, as OAR does.

    Each core's ``cpuset`` is the id of the CPU it is on its host (OAR's
    property, which the node confines the job to): the host's cores in
    order, 0 to ``cpus * cores - 1``. ``node_cpus`` is how many CPUs each
    host really has, when fewer: emulated nodes of one machine get its CPUs
    round-robin.
    """
    if cpus < 1 or cores < 1:
        raise RequestError("--cpus and --cores take positive numbers")
    if node_cpus is not None and node_cpus < 1:
        raise RequestError("--node-cpus takes a positive number")
    table = resources_table(session)
    unknown = [name for name in properties or {} if name not in table.c]
    if unknown:
        raise RequestError(f"unknown property '{unknown[0]}' (add it with oarproperty -a)")
    next_cpu = (session.scalar(select(Resource.cpu).order_by(Resource.cpu.desc()).limit(1)) or 0) + 1
    next_core = (session.scalar(select(Resource.core).order_by(Resource.core.desc()).limit(1)) or 0) + 1
    defaults = {
        column.name: column.default.arg
        for column in Resource.__table__.columns
        if column.default is not None and not callable(column.default.arg)
    }
    ids: list[int] = []
    for host in hosts:
        for index in range(cpus * cores):
            if index and index % cores == 0:
                next_cpu += 1
            cpuset = index % node_cpus if node_cpus else index
            values = {
                **defaults,
                "network_address": host, "host": host, "cpu": next_cpu, "core": next_core, "cpuset": str(cpuset),
                "state": ResourceState.ALIVE, "state_since": time.time(), **(properties or {}),
            }
            inserted: Any = session.execute(table.insert().values(**values))
            ids.append(inserted.inserted_primary_key[0])
            next_core += 1
        next_cpu += 1
    return ids
