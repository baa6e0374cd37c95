"""Driver errors become the catalog's typed errors, for every caller (a library user as much as the CLI).

The Store's units of work (``Store.session`` / ``Store.read_session``), its construction (the schema guard),
migrations and the bulk paths run inside :func:`translated`:

- an integrity violation becomes :class:`DataInvalid` naming the constraint (unique, check, not-null), or
  :class:`RunNotFound` for a foreign key (every foreign key of the schema points at ``runs``); the unit of
  work was rolled back, so nothing of it was written;
- any other driver error (cannot connect, not a database, locked beyond the busy timeout, a write refused by a
  read-only transaction, disk full …) and a connection-pool timeout become :class:`DatabaseUnavailable`.

Messages name the database by its URL with the password masked (and scrubbed from the driver's text); the
driver's exception stays chained (``raise … from exc``) for ``--debug`` and for callers that want the detail.
Errors that are already typed, and programming errors that are not the database's (``TypeError`` …), pass
through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from alphaforge.db.adbc import constraint_kind
from alphaforge.db.urls import mask_url, scrub_password
from alphaforge.errors import AlphaForgeError, DatabaseUnavailable, DataInvalid, RunNotFound

_CONSTRAINT_NAME = re.compile(r"\b(?:ck|uq|fk|pk)_[a-z0-9_]+")


def reason_of(exc: BaseException, url: str | URL) -> str:
    """The driver's own message (first line, password scrubbed) of a database exception."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(original).strip().splitlines() or [type(original).__name__]
    return scrub_password(lines[0].strip(), url)


def constraint_name_in(message: str) -> str | None:
    """The first constraint name (the schema's ``ck_``/``uq_``/``fk_``/``pk_`` naming convention) in a driver
    message: SQLite names CHECKs only in its text."""
    match = _CONSTRAINT_NAME.search(message)
    return match.group(0) if match else None


def constraint_name(exc: IntegrityError) -> str | None:
    """The violated constraint's name: PostgreSQL reports it, SQLite names CHECKs in its message."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else constraint_name_in(str(exc.orig))


def typed_error(exc: BaseException, url: str | URL, action: str) -> AlphaForgeError:
    """The catalog error for a driver exception raised while trying to ``action`` (e.g. "read from database")."""
    where, reason = mask_url(url), reason_of(exc, url)
    if isinstance(exc, IntegrityError):
        kind = constraint_kind(exc.orig) if exc.orig is not None else None
        if kind == "foreign_key":
            return RunNotFound(
                f"{where} refused the write: a row refers to a run that does not exist ({reason}); store the "
                "run first (nothing was written)"
            )
        name = constraint_name(exc)
        constraint = f"{kind or 'integrity'} constraint" + (f" {name}" if name else "")
        return DataInvalid(
            f"{where} refused the write: {constraint} violated ({reason}); nothing was written", constraint=name
        )
    return DatabaseUnavailable(
        f"cannot {action} {where}: {reason} (check the URL and that the database is up and readable; retry if it was busy)"
    )


@contextmanager
def translated(url: str | URL, action: str) -> Iterator[None]:
    """Raise the catalog's typed error for any database error inside the block (see the module docstring)."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as exc:
        raise typed_error(exc, url, action) from exc
