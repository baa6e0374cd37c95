"""The SQLite bulk helper process: Arrow ADBC writes and reads, out of the caller's process.

Why a separate process: ``adbc_driver_sqlite`` links its own private copy of SQLite, while SQLAlchemy uses
Python's ``sqlite3`` (another copy). SQLite's POSIX advisory locks are per process and per file, and each
copy tracks them separately, so when one copy closes a file descriptor the kernel drops every lock the
*process* holds on that file, including the other copy's (https://www.sqlite.org/howtocorrupt.html §2.2.1).
Opening and closing one ``sqlite3`` connection while an in-process ADBC connection held the WAL write lock
let another process take the write lock too (and the other way round): two writers, a corruptible database.
In this process only ADBC's SQLite ever touches the file, so its locks are sound; the caller streams Arrow
IPC over a pipe (:mod:`alphaforge.db.bulk_sqlite`).

Protocol (stdin -> stdout, one request at a time): frames of ``<u8 length><bytes>``. A request is a JSON
header frame, plus one Arrow IPC stream frame when the header says ``"with_table": true``; a reply is a JSON
header frame (``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "kind": ..., "message": ...}``), plus one
Arrow IPC frame when ``"with_table": true``.

Writes are ``adbc_ingest`` (append), reads ADBC Arrow queries. Every connection: ``busy_timeout = 30000``, ``foreign_keys = ON``, ``synchronous = NORMAL``,
``mmap_size`` 256 MB; writes run in one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so concurrent writers queue on the
busy timeout instead of failing with SQLITE_BUSY_SNAPSHOT), committed at the end and rolled back on any error.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import urllib.parse
from collections import OrderedDict
from typing import Any

import pyarrow as pa

from alphaforge.db import adbc

BUSY_TIMEOUT_MS = 30_000
MMAP_BYTES = 256 * 2**20
READ_BATCH_ROWS = 2**20
MAX_CONNECTIONS = 8
  # distinct database files kept open by one helper (least recently used closed first)
_LEN = struct.Struct("<Q")
_TYPES = {"int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(), "string": pa.string()}


# -- framing (shared with the client side) -----------------------------------------------------------------


def write_frame(fd: int, data: bytes | memoryview | pa.Buffer) -> None:
    view = memoryview(data).cast("B")
    os.write(fd, _LEN.pack(len(view)))
    while len(view):
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int) -> bytearray | None:
    """One frame, or ``None`` at a clean end of stream (the other side closed the pipe)."""
    head = _read_exact(fd, _LEN.size, allow_eof=True)
    if head is None:
        return None
    (length,) = _LEN.unpack(head)
    body = _read_exact(fd, length, allow_eof=False)
    assert body is not None
    return body


def _read_exact(fd: int, n: int, *, allow_eof: bool) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        chunk = os.readv(fd, [view[got:]])
        if chunk == 0:
            if got == 0 and allow_eof:
                return None
            raise EOFError(f"pipe closed after {got} of {n} bytes")
        got += chunk
    return buf


def table_to_ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def ipc_to_table(data: bytearray) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


# -- the helper's state ------------------------------------------------------------------------------------


class _Connections:
    """ADBC connections per database file, reopened when the file at that path is replaced."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, tuple[adbc.Connection, tuple[int, int]]] = OrderedDict()

    def get(self, path: str) -> adbc.Connection:
        try:
            st = os.stat(path)
        except FileNotFoundError:  # a missing database is an error, never created here
            self.discard(path)
            raise
        identity = (st.st_dev, st.st_ino)
        cached = self._open.pop(path, None)
        if cached is not None and cached[1] == identity:
            self._open[path] = cached
            return cached[0]
        if cached is not None:
            cached[0].close()
        conn = adbc.connect_sqlite(f"file:{urllib.parse.quote(path)}?mode=rw")
        try:
            adbc.execute(conn, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            adbc.execute(conn, "PRAGMA foreign_keys = ON")
            adbc.execute(conn, "PRAGMA synchronous = NORMAL")
            # Reads of a whole run walk ~100 MB per million rows: map the file instead of copying every
            # page through the (2 MB) page cache. Safe in WAL mode; a fault would end this helper only.
            adbc.execute(conn, f"PRAGMA mmap_size = {MMAP_BYTES}")
        except BaseException:
            conn.close()
            raise
        self._open[path] = (conn, identity)
        while len(self._open) > MAX_CONNECTIONS:
            _, (old, _) = self._open.popitem(last=False)
            old.close()
        return conn

    def discard(self, path: str) -> None:
        cached = self._open.pop(path, None)
        if cached is not None:
            cached[0].close()


def _in_transaction(conns: _Connections, path: str, begin: str, work: Any) -> Any:
    conn = conns.get(path)
    adbc.execute(conn, begin)
    try:
        result = work(conn)
        adbc.execute(conn, "COMMIT")
        return result
    except BaseException:
        try:
            adbc.execute(conn, "ROLLBACK")
        except Exception:  # noqa: BLE001 - a connection that cannot roll back is not reused
            conns.discard(path)
        raise


def _ingest(conns: _Connections, header: dict[str, Any], table: pa.Table) -> dict[str, Any]:
    """Append ``table`` (its run_hash column included: the rows of one or several runs) after checking every
    fence of ``header["fences"]``, in one transaction."""
    fences = header.get("fences") or []

    def work(conn: adbc.Connection) -> int:
        for fence in fences:  # BEGIN IMMEDIATE holds the write lock: nobody can re-claim a run meanwhile
            adbc.check_owner(conn, fence)
        return adbc.ingest(conn, header["table"], table)

    rows = _in_transaction(conns, header["path"], "BEGIN IMMEDIATE", work)
    return {"ok": True, "rows": rows}


def _query(conns: _Connections, header: dict[str, Any]) -> tuple[dict[str, Any], pa.Table]:
    params = tuple(header.get("params", ()))

    def work(conn: adbc.Connection) -> pa.Table:
        batch_rows = READ_BATCH_ROWS
        count_sql = header.get("count_sql")
        if count_sql:
            # One batch for the whole result: the driver infers each column's type from its first batch,
            # so a nullable column that is NULL throughout that batch would otherwise be typed int64.
            batch_rows = max(1, int(adbc.query(conn, count_sql, params).column(0)[0].as_py())) + 1
        return adbc.query(conn, header["sql"], params, {"adbc.sqlite.query.batch_rows": str(batch_rows)})

    # One read transaction: the count and the rows come from the same snapshot.
    table = _in_transaction(conns, header["path"], "BEGIN", work)
    schema = header.get("schema")
    if schema:
        target = pa.schema([(name, _TYPES[kind]) for name, kind in schema])
        table = table.select([f.name for f in target]).cast(target)
    return {"ok": True, "with_table": True}, table


def _execute(conns: _Connections, header: dict[str, Any]) -> dict[str, Any]:
    params = tuple(header.get("params", ()))
    rows = _in_transaction(
        conns, header["path"], "BEGIN IMMEDIATE", lambda conn: adbc.execute(conn, header["sql"], params)
    )
    return {"ok": True, "rows": rows}


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, adbc.Fenced):
        return {"ok": False, "error": "fenced", "kind": "fenced", "message": str(exc), "run_hash": exc.run_hash}
    kind = adbc.constraint_kind(exc)
    if kind is not None:
        error = "integrity"
    elif isinstance(exc, (adbc.Error, OSError)):
        error = "database"
    else:
        error = "internal"
    return {"ok": False, "error": error, "kind": kind, "message": f"{type(exc).__name__}: {exc}"}


def serve(in_fd: int, out_fd: int) -> None:
    conns = _Connections()
    while True:
        frame = read_frame(in_fd)
        if frame is None:
            return
        header = json.loads(frame)
        table = ipc_to_table(read_frame(in_fd) or bytearray()) if header.get("with_table") else None
        result: pa.Table | None = None
        try:
            op = header["op"]
            if op == "ingest":
                assert table is not None
                reply = _ingest(conns, header, table)
            elif op == "query":
                reply, result = _query(conns, header)
            elif op == "execute":
                reply = _execute(conns, header)
            elif op == "close":
                conns.discard(header["path"])
                reply = {"ok": True}
            elif op == "ping":
                reply = {"ok": True, "pid": os.getpid()}
            else:
                reply = {"ok": False, "error": "internal", "kind": None, "message": f"unknown op {op!r}"}
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the caller, who raises it
            reply, result = _failure(exc), None
        del table
        write_frame(out_fd, json.dumps(reply).encode())
        if result is not None:
            write_frame(out_fd, table_to_ipc(result))


def main() -> None:
    # Ctrl-C reaches the whole process group: the caller decides (it kills this helper if it gives up).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the original stdout; anything a library prints goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        serve(0, out_fd)
    except (EOFError, BrokenPipeError):
        pass  # the caller went away


if __name__ == "__main__":
    main()
