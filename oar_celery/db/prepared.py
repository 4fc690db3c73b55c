"""Server-side prepared statements for the big statements of every Almighty cycle (PostgreSQL).

psycopg2 sends each statement as text, which PostgreSQL parses and plans
every time: 0.6 ms for the report batch's statement and the quick round's,
about as long as running them. A :class:`Prepared` statement is prepared once
per connection (``PREPARE``) and then executed by name; after five runs
PostgreSQL keeps a generic plan for it.

The names prepared on a connection are kept in its ``info``, which
SQLAlchemy clears when the connection is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, Result, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session


class Prepared:
    """A statement with ``:name`` parameters, prepared on each connection that runs it.

    ``name``: the prepared statement's name, unique in the project.
    ``sql``: the statement, its parameters written ``:name``.
    ``parameters``: each parameter's name and PostgreSQL type, in the order ``PREPARE`` lists them.
    """

    def __init__(self, name: str, sql: str, parameters: Sequence[tuple[str, str]],
                 *, elsewhere: Executable | None = None) -> None:
        self.name = name
        self.parameters = [p for p, _ in parameters]
        positional = sql
        for number, parameter in enumerate(self.parameters, start=1):
            positional = re.sub(rf":{parameter}\b", f"${number}", positional)
        if re.search(r"(?<!:):[a-z_]+\b", positional):
            raise ValueError(f"{name}: a parameter of the statement is not listed")
        types = f" ({', '.join(kind for _, kind in parameters)})" if parameters else ""
        self.prepare = f"PREPARE {name}{types} AS {positional}"
        #: what other databases run: the statement itself
        self.elsewhere: Executable = elsewhere if elsewhere is not None else text(sql)
        arguments = f"({', '.join(f':{p}' for p in self.parameters)})" if parameters else ""
        self._execute = text(f"EXECUTE {name}{arguments}")

    @classmethod
    def of(cls, name: str, statement: Executable, *, elsewhere: Executable | None = None,
           parameters: Sequence[tuple[str, str]] = ()) -> Prepared:
        """A Core statement prepared as PostgreSQL compiles it, its constants inlined; run as it is elsewhere.

        ``parameters``: written ``literal_column(":name")`` in ``statement`` (they pass the
        inlining as they are), with ``elsewhere`` the same statement with ``bindparam`` s.
        """
        sql = str(statement.compile(dialect=postgresql.dialect(),  # type: ignore[attr-defined]
                                    compile_kwargs={"literal_binds": True}))
        return cls(name, sql, parameters, elsewhere=elsewhere if elsewhere is not None else statement)

    def execute(self, session: Session, values: Mapping[str, Any]) -> Result[Any]:
        """Run the statement in the session's transaction (preparing it first on a new connection)."""
        connection = session.connection()
        if connection.dialect.name != "postgresql":
            return session.execute(self.elsewhere, values)
        prepared: set[str] = connection.connection.info.setdefault("oar_prepared", set())
        if self.name not in prepared:
            connection.exec_driver_sql(self.prepare)
            prepared.add(self.name)
        return session.execute(self._execute, values)
