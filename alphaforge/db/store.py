"""The Store: a database (engine per URL), its sessions, the schema guard, and the data access paths.

Opening a Store checks the schema: an empty database is created by upgrade; a database behind this code
raises :class:`SchemaBehind` naming both revisions and the exact command; a database ahead of it (written by
newer code) raises :class:`SchemaAhead`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alphaforge.db import migrate
from alphaforge.db.bulk import BulkMixin
from alphaforge.db.cache_meta import CacheMetaMixin
from alphaforge.db.engine import get_engine, mask_url
from alphaforge.db.kv import MetricsMixin
from alphaforge.errors import DatabaseUnavailable, SchemaAhead, SchemaBehind


class Store(BulkMixin, MetricsMixin, CacheMetaMixin):
    """One database. Cheap to construct: engines are shared per URL."""

    def __init__(self, url: str | None = None, *, ensure_schema: bool = True) -> None:
        self.url = migrate.resolve_url(url)
        self.engine: Engine = get_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if ensure_schema:
            self.ensure_schema()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"Store({self.masked_url!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self._sessions.begin() as session:
            yield session

    # -- schema guard -------------------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The database's alembic revision (``None`` for an empty database)."""
        try:
            with self.engine.connect() as conn:
                return migrate.current_revision(conn)
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot open database {self.masked_url}: {str(exc.orig).strip()}"
            ) from exc

    def ensure_schema(self) -> None:
        current = self.schema_revision()
        if current is None:
            with self.engine.connect() as conn:
                has_runs = inspect(conn).has_table("runs")
            if has_runs:
                raise SchemaBehind(
                    f"database {self.masked_url} has AlphaForge tables but no migration record: "
                    f"stamp it with `alembic -x db=URL stamp 0001` if it was created by hand"
                )
            migrate.upgrade(self.engine)
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
