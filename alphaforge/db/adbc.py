"""Thin helpers over the low-level Apache Arrow ADBC API (``adbc_driver_manager``), shared by the bulk paths.

Deliberately free of other AlphaForge imports and of ``adbc_driver_manager.dbapi`` (which imports pandas and
pyarrow.dataset): the SQLite bulk helper process (:mod:`alphaforge.db.bulk_sqlite_worker`) imports only this
module, pyarrow and the driver, so it starts quickly.

Constraint failures are classified portably by :func:`constraint_kind`: PostgreSQL reports a SQLSTATE, the
SQLite driver only SQLite's message text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # the driver, numpy and pyarrow load when a connection is opened or a value is built or read,
    # not to classify an error or fence a write (the Store's import path)
    import adbc_driver_manager as adbc
    import pyarrow as pa



def __getattr__(name: str) -> Any:
    """``Error``: the driver's error class, imported on first use (``except adbc.Error`` evaluates it only when
    an exception is being matched)."""
    if name == "Error":
        import adbc_driver_manager

        return adbc_driver_manager.Error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_SQLSTATE_KINDS = {"23503": "foreign_key", "23505": "unique", "23514": "check", "23502": "not_null"}
_SQLITE_KINDS = (
    ("FOREIGN KEY constraint failed", "foreign_key"),
    ("UNIQUE constraint failed", "unique"),
    ("CHECK constraint failed", "check"),
    ("NOT NULL constraint failed", "not_null"),
)


class Connection:
    """An ADBC connection together with the database handle it was opened from (both closed together)."""

    __slots__ = ("database", "conn")

    def __init__(self, database: adbc.AdbcDatabase, conn: adbc.AdbcConnection) -> None:
        self.database = database
        self.conn = conn

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        """Close both handles, ignoring errors (a handle being discarded may already be broken)."""
        for handle in (self.conn, self.database):
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not mask the original error
                pass


def connect_sqlite(uri: str) -> Connection:
    """An autocommit connection: the caller issues ``BEGIN IMMEDIATE`` / ``COMMIT`` / ``ROLLBACK`` itself.

    (With autocommit off the driver keeps a deferred ``BEGIN`` open at all times, so a write could never
    take the lock up front; in autocommit mode ``adbc_ingest`` wraps itself in a deferred ``BEGIN`` only
    when no transaction is open, and joins ours otherwise.)
    """
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite

    database = adbc_driver_sqlite.connect(uri)
    try:
        return Connection(database, adbc.AdbcConnection(database))
    except BaseException:
        database.close()
        raise


def connect_postgresql(uri: str) -> Connection:
    """A connection with autocommit off: every use ends in ``commit()`` or ``rollback()``."""
    import adbc_driver_manager as adbc
    import adbc_driver_postgresql

    database = adbc_driver_postgresql.connect(uri)
    try:
        conn = adbc.AdbcConnection(database)
    except BaseException:
        database.close()
        raise
    connection = Connection(database, conn)
    try:
        conn.set_autocommit(False)
    except BaseException:
        connection.close()
        raise
    return connection


def repeated_strings(values: Sequence[str], counts: Sequence[int]) -> pa.Array:
    """``counts[i]`` copies of ``values[i]``, one value after the other, as a dictionary-encoded string array
    (the run_hash column of one or several runs' rows in one ingest): no per-row string copies; both drivers
    bind/COPY it as plain text."""
    import numpy as np
    import pyarrow as pa

    kind = np.int8 if len(values) <= np.iinfo(np.int8).max else np.int32
    indices = np.repeat(np.arange(len(values), dtype=kind), np.asarray(counts, dtype=np.int64))
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(list(values), pa.string()))


def _params_batch(params: tuple[Any, ...]) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.record_batch([pa.array([p]) for p in params], names=[str(i) for i in range(len(params))])


def execute(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Run a statement that returns no rows; the affected row count (or -1)."""
    import adbc_driver_manager as adbc

    stmt = adbc.AdbcStatement(conn.conn)
    try:
        stmt.set_sql_query(sql)
        if params:
            stmt.bind(_params_batch(params))
        return int(stmt.execute_update())
    finally:
        stmt.close()


def query(
    conn: Connection, sql: str, params: tuple[Any, ...] = (), options: dict[str, str] | None = None
) -> pa.Table:
    """Run a query and read its whole result as one Arrow table."""
    import adbc_driver_manager as adbc

    stmt = adbc.AdbcStatement(conn.conn)
    try:
        if options:
            stmt.set_options(**options)
        stmt.set_sql_query(sql)
        if params:
            stmt.bind(_params_batch(params))
        handle, _ = stmt.execute_query()
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(handle).read_all()
    finally:
        stmt.close()


def ingest(conn: Connection, table_name: str, data: pa.Table) -> int:
    """Append ``data`` to the existing table ``table_name`` (columns matched by name)."""
    import adbc_driver_manager as adbc

    stmt = adbc.AdbcStatement(conn.conn)
    try:
        stmt.set_options(
            **{adbc.INGEST_OPTION_TARGET_TABLE: table_name, adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_APPEND}
        )
        stmt.bind_stream(data)
        count = int(stmt.execute_update())
        return count if count >= 0 else data.num_rows
    finally:
        stmt.close()


class Fenced(Exception):
    """The run is no longer executed by the writer (``owner``) that asked for a fenced write."""

    def __init__(self, owner: str, status: str | None, worker: str | None, run_hash: str | None = None) -> None:
        run = f"run {run_hash[:12]}" if run_hash else "run"
        super().__init__(f"{run} is {status} under worker {worker!r}, not running under {owner!r}")
        self.owner, self.status, self.worker, self.run_hash = owner, status, worker, run_hash


class RawFence(TypedDict):
    """The ownership fence compiled for a raw connection (built by :func:`alphaforge.db.ownership.raw_fence`)."""

    owner: str
    run_hash: str
    sql: str  # the fence: a query with a row iff the owner still executes the run
    params: list[Any]
    holder_sql: str  # SELECT status, worker of the run (for the refusal's message)
    holder_params: list[Any]


def check_owner(conn: Connection, fence: RawFence) -> None:
    """Inside a write transaction: raise :class:`Fenced` unless the fence finds (and locks) the run row.

    A run that does not exist passes: the foreign key then rejects the rows.
    """
    if query(conn, fence["sql"], tuple(fence["params"])).num_rows:
        return
    row = query(conn, fence["holder_sql"], tuple(fence["holder_params"]))
    if row.num_rows:
        raise Fenced(fence["owner"], row.column(0)[0].as_py(), row.column(1)[0].as_py(), fence.get("run_hash"))


def constraint_kind(exc: BaseException) -> str | None:
    """``foreign_key`` / ``unique`` / ``check`` / ``not_null`` for an integrity failure, else ``None``."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _SQLSTATE_KINDS:
        return _SQLSTATE_KINDS[sqlstate]
    message = str(exc)
    for needle, kind in _SQLITE_KINDS:
        if needle in message:
            return kind
    return None
