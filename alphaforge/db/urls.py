"""Database URLs: parsing them (with a clear error) and keeping their passwords out of every message.

A leaf module (no other AlphaForge database imports), so that the engine cache, the error translation and the
bulk paths can all use it without an import cycle.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from alphaforge.errors import DatabaseUnavailable

DEFAULT_DB_URL = "sqlite:///alphaforge.db"


def resolve_url(url: str | None = None) -> str:
    """The database URL: explicit, else ``$ALPHAFORGE_DB_URL``, else ``sqlite:///alphaforge.db``."""
    return url or os.environ.get("ALPHAFORGE_DB_URL") or DEFAULT_DB_URL


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (safe for logs, errors and JSON output)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable database URL>"


def scrub_password(message: str, url: str | URL) -> str:
    """``message`` with the URL's password (plain or percent-encoded) replaced by ``***``.

    Driver messages may quote the connection string they were given; this keeps the secret out of them.
    """
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return message
    if password:
        for secret in {str(password), quote(str(password), safe="")}:
            message = message.replace(secret, "***")
    return message


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


def database_identity(url: str | URL) -> str | None:
    """The database a URL names, whatever the driver or the password: ``sqlite:///<absolute path>`` for a SQLite
    file, ``postgresql://user@host:port/dbname`` for PostgreSQL; ``None`` for an in-memory SQLite database (no
    other process can see it). How a feature-cache directory records the databases that use it."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return f"sqlite:///{os.path.abspath(database)}"
    user = f"{parsed.username}@" if parsed.username else ""
    return f"{parsed.get_backend_name()}://{user}{parsed.host or ''}:{parsed.port or 5432}/{database}"
