"""PostgreSQL bulk path: Arrow ADBC (``adbc_driver_postgresql``) in this process.

Writes are ``adbc_ingest`` (binary ``COPY ... FROM STDIN`` under the hood) in one transaction, committed at the
end and rolled back on any error. Reads run ``COPY (SELECT ...) TO STDOUT`` under the hood, which the driver
only does for a query without bind parameters, so the run_hash travels as a transaction-local setting
(``set_config('alphaforge.bulk_run_hash', $1, true)``, itself a parameterized statement) that the query reads
with ``current_setting`` -- no SQL is ever built from the value.

Connections are cached per URL and per process (a few idle ones, checked with a round trip before reuse).
A forked child never uses or closes its parent's connections (closing would end the parent's session): they
are set aside and the child opens its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from sqlalchemy.engine import URL

from alphaforge.db import adbc
from alphaforge.db.per_process import PerProcess
from alphaforge.db.urls import mask_url, scrub_password
from alphaforge.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import pyarrow as pa

MAX_IDLE_PER_URL = 2
RUN_HASH_SETTING = "alphaforge.bulk_run_hash"

# Idle connections per libpq URI; a forked child sets its parent's aside and opens its own.
_idle: PerProcess[str, adbc.Connection] = PerProcess(adbc.Connection.close)


def available() -> bool:
    return find_spec("adbc_driver_postgresql") is not None


def libpq_uri(url: URL) -> str:
    """The libpq connection URI for a SQLAlchemy ``postgresql+psycopg://`` URL (user, password, host, port,
    database and query options kept; the ``+driver`` suffix dropped)."""
    userinfo = ""
    if url.username:
        userinfo = quote(url.username, safe="")
        if url.password is not None:
            userinfo += ":" + quote(str(url.password), safe="")
        userinfo += "@"
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port else ""
    query = f"?{urlencode(sorted(url.query.items()), doseq=True)}" if url.query else ""
    return f"postgresql://{userinfo}{host}{port}/{quote(url.database or '', safe='')}{query}"


def _alive(conn: adbc.Connection) -> bool:
    try:
        adbc.execute(conn, "SELECT 1")
        conn.commit()
        return True
    except adbc.Error:
        return False


def acquire(url: URL) -> tuple[str, adbc.Connection]:
    """An open connection for ``url`` (idle and alive, or new), with no transaction in progress."""
    uri = libpq_uri(url)
    while (conn := _idle.take(uri)) is not None:
        if _alive(conn):
            return uri, conn
        conn.close()
    try:
        return uri, adbc.connect_postgresql(uri)
    except adbc.Error as exc:
        raise DatabaseUnavailable(
            f"cannot open {mask_url(url)} for bulk transfer: {scrub_password(str(exc), url)}"
        ) from exc


def release(uri: str, conn: adbc.Connection, *, reusable: bool) -> None:
    if not (reusable and _idle.give(uri, conn, max_idle=MAX_IDLE_PER_URL)):
        conn.close()


def ingest(url: URL, table_name: str, data: pa.Table, *, fences: Sequence[adbc.RawFence] = ()) -> int:
    """Append ``data`` (all columns, including run_hash: the rows of one or several runs) to ``table_name`` in
    one transaction.

    With ``fences`` (:func:`alphaforge.db.ownership.raw_fence`, one per run), each run row is first read
    ``FOR SHARE`` where the writer still owns the run (else :class:`adbc.Fenced`): a worker recovering or
    re-claiming one of the runs waits for this transaction to end.
    """
    uri, conn = acquire(url)
    reusable = False
    try:
        for fence in fences:
            adbc.check_owner(conn, fence)
        rows = adbc.ingest(conn, table_name, data)
        conn.commit()
        reusable = True
        return rows
    except BaseException:
        try:
            conn.rollback()
            reusable = True
        except Exception:  # noqa: BLE001 - a connection that cannot roll back is closed, not reused
            pass
        raise
    finally:
        release(uri, conn, reusable=reusable)


def read(url: URL, sql: str, run_hash: str) -> pa.Table:
    """Run ``sql`` (which reads the run_hash as ``current_setting(RUN_HASH_SETTING)``) and return its rows."""
    uri, conn = acquire(url)
    reusable = False
    try:
        adbc.execute(conn, "SELECT set_config($1, $2, true)", (RUN_HASH_SETTING, run_hash))
        # JIT compilation costs more than it saves on a plain index scan of one run.
        adbc.execute(conn, "SET LOCAL jit = off")
        table = adbc.query(conn, sql)
        conn.commit()
        reusable = True
        return table
    except BaseException:
        try:
            conn.rollback()
            reusable = True
        except Exception:  # noqa: BLE001
            pass
        raise
    finally:
        release(uri, conn, reusable=reusable)


def dispose(url: URL) -> None:
    """Close this process's idle bulk connections to ``url`` (before dropping its database)."""
    _idle.dispose(libpq_uri(url))
