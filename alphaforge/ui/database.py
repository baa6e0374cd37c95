"""Open a database for the dashboard, read-only at the connection itself (not only by convention).

* SQLite: the file is opened as ``file:PATH?mode=ro`` (a URI), so the connection cannot write whatever
  statement reaches it, and a missing file is an error instead of a new empty database; reads also run under
  ``PRAGMA query_only`` through :meth:`Store.read_session`.
* PostgreSQL: the connection's ``default_transaction_read_only`` is on, so every transaction, including the
  schema check's, is ``READ ONLY``; reads also begin ``BEGIN READ ONLY`` through :meth:`Store.read_session`.

The schema is checked, never migrated: an empty database, or one behind or ahead of this code, is refused
with the same typed errors (:class:`SchemaBehind`, :class:`SchemaAhead`) the CLI prints.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from sqlalchemy.engine import URL

from alphaforge.db import migrate
from alphaforge.db.store import Store
from alphaforge.db.urls import mask_url, parse_url
from alphaforge.errors import DatabaseUnavailable, SchemaAhead, SchemaBehind

_PG_READ_ONLY = "-c default_transaction_read_only=on"


def read_only_url(url: str) -> str:
    """The URL that opens ``url``'s database read-only at the driver (see the module docstring)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise DatabaseUnavailable(
                f"the dashboard needs a SQLite database file, got {mask_url(url)!r}: give sqlite:///PATH"
            )
        path = quote(os.path.abspath(database), safe="/")
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    options = " ".join(filter(None, [str(parsed.query.get("options", "")), _PG_READ_ONLY]))
    ro: URL = parsed.update_query_dict({"options": options})
    return ro.render_as_string(hide_password=False)


def open_read_only(url: str) -> Store:
    """A :class:`Store` on ``url`` that cannot write, after checking its schema is this code's."""
    store = Store(read_only_url(url), ensure_schema=False)
    with store.read_connection() as conn:
        current = migrate.current_revision(conn)
    head = f"{migrate.SCHEMA_VERSION:04d}"
    number = migrate.revision_number(current)
    if number < migrate.SCHEMA_VERSION:
        shown = "no AlphaForge schema" if current is None else f"schema revision {current}"
        raise SchemaBehind(
            f"database {mask_url(url)} has {shown}, this AlphaForge expects {head}: the dashboard never writes, "
            f"so run `alphaforge db upgrade --db {mask_url(url)}` first",
            current=current, expected=head,
        )
    if number > migrate.SCHEMA_VERSION:
        raise SchemaAhead(
            f"database {mask_url(url)} is at schema revision {current}, newer than this AlphaForge (expects "
            f"{head}): upgrade the alphaforge package",
            current=current, expected=head,
        )
    return store
