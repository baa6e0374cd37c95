"""SQLite bulk path: Arrow ADBC in a helper process (see :mod:`alphaforge.db.bulk_sqlite_worker` for why).

The helpers are cached per process and reused: a call takes an idle helper (or starts one), streams an Arrow
IPC table over a pipe and returns it when done. Fork safety (:class:`~alphaforge.db.per_process.PerProcess`):
a forked child never talks to (or closes) its parent's helpers; they are set aside and the child starts its
own on first use. A helper that fails mid-call
(crash, interrupted call) is killed and never reused; SQLite rolls back whatever it had not committed.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaforge.db.per_process import PerProcess
from alphaforge.errors import DatabaseUnavailable

if TYPE_CHECKING:  # pyarrow and the wire format load with the first call, not to open a Store
    import pyarrow as pa

MAX_IDLE_HELPERS = 4
_ANY = "any"  # the one key: a helper serves every database file


class HelperFailed(DatabaseUnavailable):
    """The helper process died or answered out of protocol (the helper is discarded)."""


class HelperUnreached(HelperFailed):
    """The request never reached the helper whole, so it did nothing: safe to retry on a new helper."""


_IDEMPOTENT = ("query", "ping")


def available() -> bool:
    """Whether the ADBC SQLite driver is installed (else the caller uses the SQLAlchemy Core path)."""
    return bool(sys.executable) and find_spec("adbc_driver_sqlite") is not None


class _Helper:
    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
                [sys.executable, "-m", "alphaforge.db.bulk_sqlite_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env, close_fds=True,
            )
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot start the SQLite bulk helper process: {exc}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()

    def call(self, header: dict[str, Any], table: pa.Table | None = None) -> tuple[dict[str, Any], pa.Table | None]:
        """One request and its reply. :class:`HelperUnreached` if the request never got through whole."""
        from alphaforge.db.bulk_sqlite_worker import ipc_to_table, read_frame, table_to_ipc, write_frame

        if table is not None:
            header = {**header, "with_table": True}
        try:
            write_frame(self._in, json.dumps(header).encode())
            if table is not None:
                write_frame(self._in, table_to_ipc(table))
        except OSError as exc:  # e.g. BrokenPipeError: the helper had died, it acted on nothing
            raise HelperUnreached(f"the SQLite bulk helper process is gone ({exc})") from exc
        try:
            frame = read_frame(self._out)
            if frame is None:
                raise EOFError("no reply")
            reply: dict[str, Any] = json.loads(frame)
            result = None
            if reply.get("with_table"):
                body = read_frame(self._out)
                if body is None:
                    raise EOFError("no table in reply")
                result = ipc_to_table(body)
        except (OSError, EOFError, ValueError) as exc:
            code = self.proc.poll()
            raise HelperFailed(
                f"the SQLite bulk helper process failed ({'exit code ' + str(code) if code is not None else exc}); "
                "the call was rolled back: retry it"
            ) from exc
        return reply, result

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# Idle helpers of this process; a forked child sets its parent's aside (never used, never killed).
_idle: PerProcess[str, _Helper] = PerProcess(_Helper.kill)


def call(header: dict[str, Any], table: pa.Table | None = None) -> tuple[dict[str, Any], pa.Table | None]:
    """Send one request to an idle helper of this process (started on demand).

    A helper found dead is replaced and the request retried once when that is safe: always for reads,
    and for writes only when the request provably never reached it (a write that got through may have
    committed before the helper died, so that failure is reported, never repeated).
    """
    try:
        return _call_once(header, table)
    except HelperUnreached:
        return _call_once(header, table)
    except HelperFailed:
        if header.get("op") not in _IDEMPOTENT:
            raise
        return _call_once(header, table)


def _live_idle() -> _Helper | None:
    """An idle helper of this process that is still alive (dead ones are discarded), or ``None``."""
    while (helper := _idle.take(_ANY)) is not None and helper.proc.poll() is not None:
        helper.kill()  # died while idle: nothing was in flight, replace it
    return helper


def _park(helper: _Helper) -> None:
    """Return ``helper`` to the idle pool (or stop it when the pool is full)."""
    if not _idle.give(_ANY, helper, max_idle=MAX_IDLE_HELPERS):
        helper.kill()


def _call_once(header: dict[str, Any], table: pa.Table | None) -> tuple[dict[str, Any], pa.Table | None]:
    helper = _live_idle() or _Helper()
    try:
        reply, result = helper.call(header, table)
    except BaseException:
        # Interrupted or broken mid-protocol: the pipe may be out of step, so this helper is never reused.
        helper.kill()
        raise
    _park(helper)
    return reply, result


def prestart() -> None:
    """Start a helper now, in the background, when this process has no idle one: its start (a Python process
    importing pyarrow and the ADBC driver, some 0.4 s of CPU) then overlaps the caller's own work instead of
    delaying its first bulk call. The helper is idle at once; it answers as soon as it has started."""
    _park(_live_idle() or _Helper())


def forget(path: str) -> None:
    """Make this process's idle helpers close their connection to the database file ``path`` (before the
    file is deleted or replaced; a replaced file is also noticed on the next call by its inode)."""
    for helper in _idle.pop(_ANY):
        try:
            helper.call({"op": "close", "path": os.path.abspath(path)})
        except HelperFailed:
            helper.kill()
            continue
        _park(helper)


def shutdown() -> None:
    """Stop this process's idle helpers (tests and tools; helpers also exit when this process does)."""
    _idle.dispose_all()


atexit.register(shutdown)
