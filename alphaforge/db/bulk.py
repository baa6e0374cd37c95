"""Bulk paths for the high-volume rows (trades, equity): never per-object ORM instances.

Input (a pandas DataFrame, a pyarrow Table or a list of mappings) is validated and typed by
:mod:`alphaforge.db.bulk_frames` (int64 ns ``ts``, float32 values, stable sort by ts, monotonic assertion);
each call is atomic -- one short transaction of its own, committed at the end, rolled back on any failure
(bad data, a missing parent run, a duplicate row, a CHECK), so a failed call leaves no row behind. The calls
must not run inside an open ORM session that holds the run row or, on SQLite, the write lock.

A call may carry the rows of several runs (:meth:`BulkMixin.insert_equity_runs`: e.g. the points of a sweep
batch): one transaction that checks every run's ownership fence, then one ingest of all the rows -- the same
rows, one write-lock round trip instead of one per run. The path is chosen by the call's total row count.

The fastest sound path per dialect (measured: ``benchmarks/test_bench_bulk.py``):

- SQLite file, at least ``SMALL_FRAME_ROWS`` rows: Arrow ADBC (``adbc_ingest`` / Arrow reads) in a helper
  process -- ADBC's private SQLite copy must never share a process with Python's ``sqlite3`` on one file
  (:mod:`alphaforge.db.bulk_sqlite_worker`);
- SQLite file, fewer rows (e.g. a 5,000-bar run): SQLAlchemy Core in this process. Starting the helper
  costs ~0.35 s (a Python interpreter plus pyarrow and the driver), Core writes ~8 µs a row: below
  ``SMALL_FRAME_ROWS`` the helper's cold start would cost more than it saves. A read counts the run's rows
  first, up to ``SMALL_FRAME_ROWS`` (an indexed ``count(*)`` of a ``LIMIT``), to choose the same way. Both
  paths store and return the same values;
- PostgreSQL: Arrow ADBC in process (binary COPY both ways, :mod:`alphaforge.db.bulk_postgres`);
- otherwise (in-memory SQLite, a driver not installed): SQLAlchemy Core ``executemany``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import numpy as np
import pyarrow as pa
from sqlalchemy import Engine, Table, func, literal_column, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from alphaforge.db import adbc, bulk_postgres, bulk_sqlite, ownership
from alphaforge.db.bulk_frames import (
    EQUITY_COLUMNS,
    FLOAT32_MAX,
    NULLABLE_TRADE_COLUMNS,
    TRADE_COLUMNS,
    FrameLike,
    Rows,
    columns_of,
    normalize,
    normalize_rows,
    read_schema,
    to_arrow,
    to_frame,
    to_result_frame,
)
from alphaforge.db.engine import read_only
from alphaforge.db.failures import constraint_name_in
from alphaforge.db.models import Equity, Trade
from alphaforge.db.urls import mask_url, scrub_password
from alphaforge.errors import DatabaseUnavailable, DataInvalid, RunAbandoned, RunNotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EQUITY_COLUMNS", "FLOAT32_MAX", "TRADE_COLUMNS", "FrameLike", "backend_for",
    "normalize_rows", "to_frame",
]

_TABLES: dict[str, Table] = {"trades": Trade.__table__, "equity": Equity.__table__}  # type: ignore[dict-item]
_ORDER_BY = {"trades": "seq", "equity": "ts"}
_PRIMARY_KEY = {"trades": "(run_hash, seq)", "equity": "(run_hash, ts)"}
# CHECK constraints on values the frame rules do not cover, to name the first offending row.
_CHECKS = {"ck_equity_drawdown_nonneg": "drawdown", "ck_trades_cost_bps_nonneg": "cost_bps"}
#: Below this many rows a SQLite-file call runs in process (Core) instead of in the ADBC helper process.
SMALL_FRAME_ROWS = 50_000


class DbFailure(Exception):
    """A database error of one bulk call, in backend-neutral form (``kind`` from :func:`adbc.constraint_kind`;
    ``run_hash``: the run a refused fence names)."""

    def __init__(self, kind: str | None, message: str, *, integrity: bool, run_hash: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.integrity = integrity
        self.run_hash = run_hash


Parts = Sequence[tuple[str, pa.Table]]  # (run_hash, that run's rows without a run_hash column), in order


class BulkBackend(Protocol):
    name: str

    def insert(self, table: str, run_hash: str, data: pa.Table, owner: str | None = None) -> int: ...

    def insert_runs(self, table: str, parts: Parts, owner: str | None = None) -> int: ...

    def read(self, table: str, run_hash: str) -> pa.Table: ...


class _OneRun:
    """``insert`` of one run as the one-part case of ``insert_runs``."""

    def insert_runs(self, table: str, parts: Parts, owner: str | None = None) -> int:
        raise NotImplementedError

    def insert(self, table: str, run_hash: str, data: pa.Table, owner: str | None = None) -> int:
        return self.insert_runs(table, [(run_hash, data)], owner)


def keyed(parts: Parts) -> pa.Table:
    """The rows of every part in one table, in part order, with the run_hash column first."""
    data = parts[0][1] if len(parts) == 1 else pa.concat_tables([t for _, t in parts])
    return data.add_column(0, "run_hash", adbc.repeated_strings([h for h, _ in parts], [t.num_rows for _, t in parts]))


def _fenced(exc: adbc.Fenced) -> DbFailure:
    return DbFailure("fenced", str(exc), integrity=False, run_hash=exc.run_hash)


def _select_sql(table: str, run_hash_expr: str) -> str:
    # Constant identifiers only; the run_hash is always a bound parameter or a server-side setting.
    return (
        f"SELECT {', '.join(columns_of(table))} FROM {table} "  # noqa: S608
        f"WHERE run_hash = {run_hash_expr} ORDER BY {_ORDER_BY[table]}"
    )


class SqliteAdbcBulk(_OneRun):
    """A SQLite database file, through the ADBC helper process of this process."""

    name = "sqlite-adbc"

    def __init__(self, path: str) -> None:
        self.path = path

    def _call(self, header: dict[str, Any], data: pa.Table | None = None) -> tuple[dict[str, Any], pa.Table | None]:
        reply, result = bulk_sqlite.call({**header, "path": self.path}, data)
        if not reply.get("ok"):
            if reply.get("error") == "internal":
                raise RuntimeError(f"SQLite bulk helper: {reply.get('message')}")
            raise DbFailure(reply.get("kind"), str(reply.get("message")), integrity=reply.get("error") == "integrity",
                            run_hash=reply.get("run_hash"))
        return reply, result

    def insert_runs(self, table: str, parts: Parts, owner: str | None = None) -> int:
        fences = [] if owner is None else [ownership.raw_fence("sqlite", h, owner) for h, _ in parts]
        reply, _ = self._call({"op": "ingest", "table": table, "fences": fences}, keyed(parts))
        return int(reply["rows"])

    def read(self, table: str, run_hash: str) -> pa.Table:
        header: dict[str, Any] = {
            "op": "query", "sql": _select_sql(table, "?"), "params": [run_hash], "schema": read_schema(table),
        }
        if table == "trades":  # nullable columns: type them from every row (see bulk_sqlite_worker._query)
            header["count_sql"] = f"SELECT count(*) FROM {table} WHERE run_hash = ?"  # noqa: S608 - constant
        _, result = self._call(header)
        assert result is not None
        return result


class PostgresAdbcBulk(_OneRun):
    """A PostgreSQL database, through ADBC connections cached in this process."""

    name = "postgresql-adbc"

    def __init__(self, url: URL) -> None:
        self.url = url

    def _wrap(self, exc: adbc.Error) -> DbFailure:
        kind = adbc.constraint_kind(exc)
        return DbFailure(kind, scrub_password(str(exc), self.url), integrity=kind is not None)

    def insert_runs(self, table: str, parts: Parts, owner: str | None = None) -> int:
        try:
            fences = [] if owner is None else [ownership.raw_fence("postgresql", h, owner) for h, _ in parts]
            return bulk_postgres.ingest(self.url, table, keyed(parts), fences=fences)
        except adbc.Error as exc:
            raise self._wrap(exc) from exc
        except adbc.Fenced as exc:
            raise _fenced(exc) from exc

    def read(self, table: str, run_hash: str) -> pa.Table:
        sql = _select_sql(table, f"current_setting('{bulk_postgres.RUN_HASH_SETTING}')")
        try:
            return bulk_postgres.read(self.url, sql, run_hash)
        except adbc.Error as exc:
            raise self._wrap(exc) from exc


class CoreBulk(_OneRun):
    """SQLAlchemy Core ``executemany`` / ``select``: the portable fallback (in-memory SQLite, no driver)."""

    name = "core"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_runs(self, table: str, parts: Parts, owner: str | None = None) -> int:
        names = parts[0][1].column_names
        sqlite = self.engine.dialect.name == "sqlite"
        records: list[Any] = []
        for run_hash, data in parts:
            assert data.column_names == names
            lists = [_python_values(data.column(name)) for name in names]
            if sqlite:  # the driver's own executemany on tuples: SQLAlchemy's per-row parameter processing
                # costs ~5 µs a row, more than SQLite's insert itself (a 5,000-bar run's persist: 60 -> 20 ms)
                records += zip(itertools.repeat(run_hash), *lists)
            else:
                records += [dict(zip(names, row, strict=True), run_hash=run_hash) for row in zip(*lists, strict=True)]
        try:
            with self.engine.connect() as conn:
                if sqlite:
                    # The FK to runs must hold on this path too; a pooled connection can come back with
                    # foreign_keys off (the pragma is ignored inside a transaction, e.g. after a migration).
                    # Set before the transaction begins, where SQLite honours it.
                    driver = conn.connection.driver_connection
                    assert driver is not None
                    driver.execute("PRAGMA foreign_keys = ON")
                with conn.begin():
                    if owner is not None:
                        for run_hash, _ in parts:
                            ownership.check_owner(conn, run_hash, owner)
                    if sqlite:
                        conn.exec_driver_sql(_insert_sql(table, names), records)
                    else:
                        conn.execute(_TABLES[table].insert(), records)
        except DBAPIError as exc:
            kind = adbc.constraint_kind(exc.orig) if exc.orig is not None else None
            raise DbFailure(kind, str(exc.orig), integrity=kind is not None) from exc
        except adbc.Fenced as exc:
            raise _fenced(exc) from exc
        return len(records)

    def read(self, table: str, run_hash: str) -> pa.Table:
        t = _TABLES[table]
        stmt = select(*(t.c[c] for c in columns_of(table))).where(t.c.run_hash == run_hash)
        stmt = stmt.order_by(t.c[_ORDER_BY[table]])
        try:
            with read_only(self.engine).connect() as conn:
                rows = conn.execute(stmt).all()
        except DBAPIError as exc:
            raise DbFailure(None, str(exc.orig), integrity=False) from exc
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in columns_of(table)]
        arrays = {}
        for (name, kind), values in zip(read_schema(table), columns, strict=True):
            if kind == "float32":
                arrays[name] = pa.array(np.array(values, dtype=np.float64), from_pandas=True).cast(pa.float32())
            else:
                arrays[name] = pa.array(list(values), type=pa.int64() if kind == "int64" else pa.string())
        return pa.table(arrays)


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values, exactly (float32 -> the same value as a Python float; NULL -> None)."""
    if column.null_count == 0 and pa.types.is_primitive(column.type):
        return column.to_numpy().tolist()
    return column.to_pylist()


def _insert_sql(table: str, names: list[str]) -> str:
    """``INSERT INTO table (run_hash, names...) VALUES (?, ...)`` (constant identifiers only; qmark style)."""
    columns = ["run_hash", *names]
    for name in columns:
        assert name in _TABLES[table].c, name
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


def _sqlite_file(url: URL) -> str | None:
    """The database file of a plain ``sqlite:///path`` URL (None: in memory, or URI/query options)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    return os.path.abspath(database)


def backend_for(engine: Engine) -> BulkBackend:
    """The bulk path for large calls on ``engine``'s database (see the module docstring)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None and bulk_sqlite.available():
            return SqliteAdbcBulk(path)
    elif url.get_backend_name() == "postgresql" and bulk_postgres.available():
        return PostgresAdbcBulk(url)
    return CoreBulk(engine)


def _violates(exc: DbFailure, rows: Rows) -> bool:
    """Whether ``rows`` hold a value breaking the CHECK that ``exc`` names."""
    column = _CHECKS.get(constraint_name_in(str(exc)) or "")
    return column is not None and bool((~(rows.columns[column] >= 0)).any())


def _culprit(exc: DbFailure, parts: list[tuple[str, Rows]]) -> tuple[str, Rows]:
    """The run a failed call of several runs is reported for: the run of a refused fence, the first run whose
    rows break the CHECK named, else the first run."""
    for run_hash, rows in parts:
        if (exc.kind == "fenced" and run_hash == exc.run_hash) or (exc.kind == "check" and _violates(exc, rows)):
            return run_hash, rows
    return parts[0]


def _raise_failure(exc: DbFailure, rows: Rows, run_hash: str, where: str) -> NoReturn:
    table = rows.table
    nothing = "nothing was inserted"
    if exc.kind == "fenced":
        raise RunAbandoned(
            f"{table} of run {run_hash[:12]} refused: {exc}; this worker lost the run (recovered as abandoned) "
            f"and {nothing}", run_hash=run_hash,
        ) from exc
    if exc.kind == "foreign_key":
        raise RunNotFound(
            f"no run {run_hash}: store the run before its {table} ({nothing})", run_hash=run_hash
        ) from exc
    if exc.kind == "unique":
        raise DataInvalid(
            f"{table} of run {run_hash} collide with rows already stored (primary key {_PRIMARY_KEY[table]}); "
            f"{nothing}: delete the run's {table} before writing them again", run_hash=run_hash,
        ) from exc
    if exc.kind == "check":
        name = constraint_name_in(str(exc))
        column = _CHECKS.get(name or "")
        if column is not None:
            bad = ~(rows.columns[column] >= 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                row = rows.input_row(i)
                raise DataInvalid(
                    f"{table}.{column}: {float(rows.columns[column][i])!r} at row {row} violates {name} "
                    f"({column} >= 0); {nothing}", column=column, row=row, constraint=name,
                ) from exc
        raise DataInvalid(f"{table}: {exc} ({nothing})", constraint=name) from exc
    if exc.integrity:
        raise DataInvalid(f"{table}: {exc} ({nothing})") from exc
    raise DatabaseUnavailable(f"cannot write {table} to {where}: {exc} ({nothing})") from exc


class BulkCaller(Protocol):
    """What a bulk call needs of its Store (:class:`alphaforge.db.bulk_mixin.BulkMixin`)."""

    engine: Engine

    def bulk_backend(self) -> BulkBackend: ...

    def _backend(self, rows: int | None) -> BulkBackend: ...


def _stored_rows(engine: Engine, table: str, run_hash: str, cap: int) -> int:
    """The run's row count in ``table``, counted up to ``cap`` (decides a SQLite-file read's path: whether it
    reaches ``SMALL_FRAME_ROWS`` is all that matters, and counting stops there instead of walking a
    million-row run's index entries, ~60 ms)."""
    t = _TABLES[table]
    first = select(literal_column("1")).select_from(t).where(t.c.run_hash == run_hash).limit(cap).subquery()
    try:
        with read_only(engine).connect() as conn:
            count = conn.execute(select(func.count()).select_from(first)).scalar()
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"cannot read {table} from {mask_url(engine.url)}: {exc.orig}") from exc
    return int(count or 0)


def insert_runs(store: BulkCaller, table: str, items: Sequence[tuple[str, FrameLike]],
                owner: str | None = None) -> int:
    """One bulk insert of ``store`` for one or several runs (:meth:`BulkMixin.insert_trades`,
    ``insert_equity``, ``insert_equity_runs``): one transaction, every run's fence checked, all or nothing."""
    parts: list[tuple[str, Rows]] = []
    for run_hash, data in items:
        if not isinstance(run_hash, str) or not run_hash:
            raise DataInvalid(f"{table}: run_hash must be a non-empty string, got {run_hash!r}")
        rows = normalize(table, data)
        if len(rows):
            parts.append((run_hash, rows))
    if not parts:
        return 0
    try:
        backend = store._backend(sum(len(rows) for _, rows in parts))
        return backend.insert_runs(table, [(h, to_arrow(rows)) for h, rows in parts], owner)
    except DbFailure as exc:
        run_hash, rows = _culprit(exc, parts)
        _raise_failure(exc, rows, run_hash, mask_url(store.engine.url))


def read(store: BulkCaller, table: str, run_hash: str) -> pd.DataFrame:
    """One bulk read of ``store`` (its :meth:`BulkMixin.read_trades` / ``read_equity``)."""
    try:
        backend = store.bulk_backend()
        if isinstance(backend, SqliteAdbcBulk):
            backend = store._backend(_stored_rows(store.engine, table, run_hash, SMALL_FRAME_ROWS))
        data = backend.read(table, run_hash)
    except DbFailure as exc:
        raise DatabaseUnavailable(f"cannot read {table} from {mask_url(store.engine.url)}: {exc}") from exc
    return to_result_frame(table, data)


# Kept importable from here for callers that predate bulk_frames.
NULLABLE_COLUMNS = NULLABLE_TRADE_COLUMNS
