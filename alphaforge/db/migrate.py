"""Programmatic migrations: locate the scripts, read revisions, upgrade/downgrade under a lock.

Revision ids are ordered integers written with four digits (``0001``, ``0002``, ...), so the schema version
is an integer: :data:`SCHEMA_VERSION` is the head this code expects and the value written to
``runs.db_version``.

Two processes upgrading the same database at the same moment both succeed: upgrades are serialized by a
PostgreSQL advisory lock (held on the migrating connection) or, for a SQLite file, by a lock file beside the
database; the second process then finds the schema already at head.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from alphaforge.db.failures import translated
from alphaforge.db.urls import DEFAULT_DB_URL, mask_url, resolve_url  # noqa: F401 - the URL rule lives in urls
from alphaforge.errors import ConfigInvalid, SchemaAhead

if TYPE_CHECKING:  # alembic loads only to migrate: opening an up-to-date database reads one row
    from alembic.config import Config

SCHEMA_VERSION = 4
_PG_ADVISORY_KEY = 0x616C7068  # "alph": one cluster-wide key for AlphaForge migrations


def script_location() -> Path:
    """The migration scripts: inside the installed package (wheel) or the checkout's top-level alembic/."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "migrations", package_dir.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"alembic migration scripts not found near {package_dir}")


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


def revision_number(revision: str | None) -> int:
    """``"0002"`` → 2; ``None`` (empty database) → 0."""
    return int(revision) if revision else 0


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision in alembic's ``alembic_version`` table (``None``: no table or no row), read with plain
    SQL — what ``MigrationContext.get_current_revision`` returns for our single-head history."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that holds the database's migration lock for the duration of the block."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_ADVISORY_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_ADVISORY_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        from filelock import FileLock

        with FileLock(f"{os.path.abspath(database)}.migrate.lock", timeout=600):
            with engine.connect() as conn:
                yield conn
        return
    with engine.connect() as conn:
        yield conn


def _run(engine: Engine, action: str, target: str) -> None:
    from alembic.util.exc import CommandError

    from alembic import command

    cfg = alembic_config()
    with migration_lock(engine) as conn:
        current = current_revision(conn)
        conn.commit()
        if revision_number(current) > SCHEMA_VERSION:
            raise SchemaAhead(
                f"database {mask_url(engine.url)} is at schema revision {current}, newer than this AlphaForge "
                f"(expects {SCHEMA_VERSION:04d}): upgrade the alphaforge package to migrate it",
                current=current, expected=f"{SCHEMA_VERSION:04d}",
            )
        cfg.attributes["connection"] = conn
        try:
            getattr(command, action)(cfg, target)
        except CommandError as exc:
            raise ConfigInvalid(f"cannot {action} to {target!r}: {exc}", target=target) from exc
        conn.commit()


def create_at_head(engine: Engine) -> None:
    """Create the schema of an empty database directly at head: the models' tables and alembic's version row,
    in one transaction under the migration lock — the same schema as upgrading 0001 → head (checked by
    ``tests/test_migrations.py``) in a fraction of the time (no migration scripts, no alembic import). A database
    that gained a schema or any table meanwhile is upgraded instead (a no-op when already at head)."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    from alphaforge.db.models import Base

    with translated(engine.url, "create database schema"):
        with migration_lock(engine) as conn:
            empty = current_revision(conn) is None and not inspect(conn).get_table_names()
            if empty:
                Base.metadata.create_all(conn, checkfirst=False)  # checked empty above
                # alembic's own version table (alembic.runtime.migration), stamped at head
                version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                                PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
                version.create(conn)
                conn.execute(version.insert().values(version_num=f"{SCHEMA_VERSION:04d}"))
            conn.commit()
        if not empty:
            upgrade(engine)


def upgrade(engine: Engine, target: str = "head") -> None:
    """Upgrade to ``target`` under the migration lock (a no-op when already there)."""
    with translated(engine.url, "upgrade database"):
        _run(engine, "upgrade", target)


def downgrade(engine: Engine, target: str) -> None:
    """Downgrade to ``target`` (a revision, ``-1``, or ``base``) under the migration lock."""
    with translated(engine.url, "downgrade database"):
        _run(engine, "downgrade", target)
