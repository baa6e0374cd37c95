"""The database server's clock, as SQL: "now" in epoch milliseconds, evaluated by the database.

Liveness (``runs.heartbeat_at``) is stamped and judged with this clock, never with a worker's wall clock:
workers on machines whose clocks disagree by more than the staleness timeout would otherwise declare each
other's live runs dead. One expression, compiled per dialect:

- PostgreSQL: ``statement_timestamp()``, when the server received the statement from the worker. That is
  the worker's sign of life: ``now()`` (the start of the transaction) would make a fence late in a long write
  transaction look older than it is, and ``clock_timestamp()`` (the moment the row is written) would, after a
  lock wait, stamp a beat that the server finished for a worker frozen meanwhile as if it were alive then.
- SQLite: ``julianday('now')`` (SQLite's clock, stable within one statement, millisecond precision;
  ``unixepoch('now', 'subsec')`` needs SQLite 3.42 and Python may bundle an older one). SQLite runs inside
  the worker's process, so a statement it executes is always a sign of life.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, select
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

# Julian day number of 1970-01-01T00:00:00Z.
_UNIX_EPOCH_JD = 2440587.5


class db_now_ms(FunctionElement[int]):  # noqa: N801 - reads as the SQL function it is
    """``now`` in integer epoch milliseconds by the database's clock (a SQL expression)."""

    type = BigInteger()
    name = "db_now_ms"
    inherit_cache = True


@compiles(db_now_ms, "postgresql")
def _postgresql(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    return "CAST(floor(extract(epoch FROM statement_timestamp()) * 1000) AS BIGINT)"


@compiles(db_now_ms, "sqlite")
def _sqlite(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    return f"CAST(round((julianday('now') - {_UNIX_EPOCH_JD}) * 86400000) AS INTEGER)"


@compiles(db_now_ms)
def _other(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"no database clock expression for dialect {compiler.dialect.name!r}")


def read_db_now_ms(connection: Any) -> int:
    """The database's "now" in epoch ms, read through a SQLAlchemy connection or session."""
    return int(connection.scalar(select(db_now_ms())))
