"""The Store: a database (engine per URL), its sessions, the schema guard, and the data access paths.

Opening a Store checks the schema: an empty database is created at head (:func:`migrate.create_at_head`); a
database behind this code raises :class:`SchemaBehind` naming both revisions and the exact command; a database
ahead of it (written by newer code) raises :class:`SchemaAhead`.

Two kinds of unit of work: :meth:`Store.session` for work that writes (on SQLite it holds the write lock from
its first statement) and :meth:`Store.read_session` for work that only reads (no lock at all; a write in it is
refused). Every database failure reaches the caller as a typed error of :mod:`alphaforge.errors`
(:mod:`alphaforge.db.failures`), whoever the caller is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from alphaforge.db import migrate
from alphaforge.db.bulk_mixin import BulkMixin
from alphaforge.db.cache_meta import CacheMetaMixin
from alphaforge.db.digests import InputDigestMixin
from alphaforge.db.engine import get_engine, read_only
from alphaforge.db.failures import translated
from alphaforge.db.kv import MetricsMixin
from alphaforge.db.urls import database_identity, mask_url, parse_url
from alphaforge.errors import AlphaForgeError, SchemaAhead, SchemaBehind


class Store(BulkMixin, MetricsMixin, CacheMetaMixin, InputDigestMixin):
    """One database. Cheap to construct: engines are shared per URL.

    Raises :class:`DatabaseUnavailable` (invalid URL, database unreachable or not a database),
    :class:`SchemaBehind` or :class:`SchemaAhead`.
    """

    def __init__(self, url: str | None = None, *, ensure_schema: bool = True) -> None:
        self.url = migrate.resolve_url(url)
        self.engine: Engine = get_engine(self.url)
        self.read_engine: Engine = read_only(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        if ensure_schema:
            self.ensure_schema()

    @classmethod
    def existing(cls, url: str | None = None) -> Store | None:
        """The database at ``url`` if it exists and is at this code's schema, else ``None``; nothing is created,
        migrated or reported (a missing SQLite file stays missing, an unreachable database is ``None``). For
        optional work done before a command has validated its input: answering a resubmission."""
        resolved = migrate.resolve_url(url)
        try:
            parsed = parse_url(resolved)
            database = parsed.database
            if parsed.get_backend_name() == "sqlite" and (
                    not database or database == ":memory:" or database.startswith("file:")
                    or not os.path.isfile(database)):
                return None
            store = cls(resolved, ensure_schema=False)
            if store.schema_revision() != f"{migrate.SCHEMA_VERSION:04d}":
                return None
        except AlphaForgeError:
            return None
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def database_identity(self) -> str | None:
        """The database itself, whatever the URL's driver or password (None: in-memory SQLite)."""
        return database_identity(self.url)

    def __repr__(self) -> str:
        return f"Store({self.masked_url!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work that writes: commits on success, rolls back on any exception.

        Database failures raise :class:`DatabaseUnavailable`; a violated constraint :class:`DataInvalid`
        (:class:`RunNotFound` for a row of a run that does not exist). On SQLite it takes the write lock at
        its start (``BEGIN IMMEDIATE``): use :meth:`read_session` for work that only reads.
        """
        with translated(self.url, "write to database"), self._sessions.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads: it takes no lock (SQLite: deferred ``BEGIN``; WAL readers never wait
        for a writer) and refuses any write (SQLite ``PRAGMA query_only``; PostgreSQL ``READ ONLY``) with
        :class:`DatabaseUnavailable`, as it does any database failure."""
        with translated(self.url, "read from database"), self._read_sessions.begin() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection for read-only lookups (the same guarantees as :meth:`read_session`)."""
        with translated(self.url, "read from database"), self.read_engine.connect() as conn:
            yield conn

    # -- schema guard -------------------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The database's alembic revision (``None`` for an empty database)."""
        with translated(self.url, "open database"), self.engine.connect() as conn:
            return migrate.current_revision(conn)

    def ensure_schema(self) -> None:
        """Migrate an empty database; refuse one behind or ahead of this code (see the module docstring)."""
        with translated(self.url, "open database"):
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        current = self.schema_revision()
        if current is None:
            with self.engine.connect() as conn:
                has_runs = inspect(conn).has_table("runs")
            if has_runs:
                raise SchemaBehind(
                    f"database {self.masked_url} has AlphaForge tables but no migration record: "
                    f"stamp it with `alembic -x db=URL stamp 0001` if it was created by hand"
                )
            migrate.create_at_head(self.engine)
            return
        number = migrate.revision_number(current)
        head = f"{migrate.SCHEMA_VERSION:04d}"
        if number > migrate.SCHEMA_VERSION:
            raise SchemaAhead(
                f"database {self.masked_url} is at schema revision {current}, newer than this AlphaForge "
                f"(expects {head}): upgrade the alphaforge package, or use a database made by this version",
                current=current, expected=head,
            )
        if number < migrate.SCHEMA_VERSION:
            raise SchemaBehind(
                f"database {self.masked_url} is at schema revision {current}, this AlphaForge expects "
                f"{head}: run `alphaforge db upgrade --db {self.masked_url}`",
                current=current, expected=head,
            )
