"""Engines: one per database URL, reused for the life of the process (and reset safely after fork).

SQLite connections get ``foreign_keys=ON``, WAL, ``synchronous=NORMAL`` and a 30 s busy timeout, and every
transaction starts with ``BEGIN IMMEDIATE`` so that writers queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade to a write. PostgreSQL goes through psycopg 3
(``postgresql+psycopg://``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from alphaforge.db import bulk_postgres, bulk_sqlite
from alphaforge.errors import DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_S = 30.0

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (safe for logs, errors and JSON output)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable database URL>"


def parse_url(url: str) -> URL:
    """Parse a database URL or raise :class:`DatabaseUnavailable` saying what a valid one looks like."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"invalid database URL {mask_url(url)!r}: expected e.g. sqlite:///alphaforge.db or "
            "postgresql+psycopg://user@host:5432/dbname",
        ) from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(
            f"unsupported database {parsed.get_backend_name()!r} in {mask_url(url)!r}: "
            "AlphaForge runs on sqlite:/// or postgresql+psycopg://"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


#: Execution option for read-only work on SQLite: a deferred transaction that does not take the write lock.
READ_ONLY = "alphaforge_read_only"


def _sqlite_on_begin(connection: Any) -> None:
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


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
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseUnavailable(
            f"no driver for {mask_url(url)!r}: install the PostgreSQL extra with "
            "`pip install 'alphaforge[postgres]'`"
        ) from exc


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url`` (created on first use)."""
    parsed = parse_url(url)
    key = parsed.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create(parsed)
        return engine


def _after_fork_in_child() -> None:
    # A forked child must not reuse the parent's pooled connections: give each engine a fresh pool.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def dispose_engine(url: str) -> None:
    """Close and forget the engine of ``url`` (tests and tools that drop databases)."""
    key = parse_url(url).render_as_string(hide_password=False)
    with _lock:
        engine = _engines.pop(key, None)
    if engine is not None:
        engine.dispose()
    parsed = parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        bulk_postgres.dispose(parsed)
    elif parsed.database and parsed.database != ":memory:":
        bulk_sqlite.forget(os.path.abspath(parsed.database))
