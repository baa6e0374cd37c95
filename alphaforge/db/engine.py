"""Engines: one per database URL, reused for the life of the process (and reset safely after fork).

SQLite connections get ``foreign_keys=ON``, WAL, ``synchronous=NORMAL`` and a 30 s busy timeout. A write
transaction starts with ``BEGIN IMMEDIATE``, so that writers queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade to a write. A read-only transaction (a connection
with the :data:`READ_ONLY` execution option: ``Store.read_session`` and the read paths) starts with a deferred
``BEGIN`` under ``PRAGMA query_only``: it takes no lock, so reads never wait behind a writer (WAL), and any write
in it is refused. PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``); its read-only transactions
start with ``BEGIN READ ONLY``.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import StaticPool

from alphaforge.db import bulk_postgres, bulk_sqlite
from alphaforge.db.per_process import PerProcess
from alphaforge.db.urls import mask_url, parse_url
from alphaforge.errors import DatabaseUnavailable

__all__ = ["READ_ONLY", "SQLITE_BUSY_TIMEOUT_S", "dispose_engine", "get_engine", "mask_url", "parse_url",
           "read_only"]

SQLITE_BUSY_TIMEOUT_S = 30.0

#: Execution option for work that only reads: no write lock on SQLite, a READ ONLY transaction on PostgreSQL.
READ_ONLY = "alphaforge_read_only"
_QUERY_ONLY = "alphaforge_query_only"  # connection.info: whether PRAGMA query_only is on for this connection

# A forked child keeps the Engine objects (Stores hold them) but gives each a fresh pool, never touching the
# parent's pooled connections.
_engines: PerProcess[str, Engine] = PerProcess(Engine.dispose, reset_in_child=lambda e: e.dispose(close=False))


def _sqlite_on_connect(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # we issue BEGIN (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _is_read_only(connection: Connection) -> bool:
    return bool(connection.get_execution_options().get(READ_ONLY, False))


def _sqlite_on_begin(connection: Connection) -> None:
    read_only = _is_read_only(connection)
    if connection.info.get(_QUERY_ONLY, False) != read_only:  # a per-connection setting: switch only on change
        connection.exec_driver_sql(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
        connection.info[_QUERY_ONLY] = read_only
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _postgresql_on_begin(connection: Connection) -> None:
    # psycopg opens the transaction with the next statement: "BEGIN READ ONLY" while read_only is set.
    driver = connection.connection.driver_connection
    want = True if _is_read_only(connection) else None
    if driver.read_only is not want:  # type: ignore[union-attr]
        driver.read_only = want  # type: ignore[union-attr]


def _create(url: URL) -> Engine:
    try:
        if url.get_backend_name() == "sqlite":
            in_memory = url.database in (None, "", ":memory:")
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                poolclass=StaticPool if in_memory else None,
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        event.listen(engine, "begin", _postgresql_on_begin)
        return engine
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseUnavailable(
            f"no driver for {mask_url(url)!r}: install the PostgreSQL extra with "
            "`pip install 'alphaforge[postgres]'`"
        ) from exc


def _key(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _anchored(url: URL) -> URL:
    """A SQLite file given by a relative path, made absolute against the current directory: an engine is
    cached per process, so ``sqlite:///research.db`` opened in one directory must not serve another's file."""
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return url
    return url.set(database=os.path.abspath(database))


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url`` (created on first use)."""
    parsed = _anchored(parse_url(url))
    return _engines.get(_key(parsed), lambda: _create(parsed))


def read_only(engine: Engine) -> Engine:
    """``engine`` for read-only work (same pool): its transactions take no write lock and refuse writes."""
    return engine.execution_options(**{READ_ONLY: True})


def dispose_engine(url: str) -> None:
    """Close and forget the engine of ``url`` and this process's bulk resources for it (tests and tools that
    drop or replace databases)."""
    parsed = _anchored(parse_url(url))
    _engines.dispose(_key(parsed))
    if parsed.get_backend_name() == "postgresql":
        bulk_postgres.dispose(parsed)
    elif parsed.database and parsed.database != ":memory:":
        bulk_sqlite.forget(parsed.database)
