"""Worker liveness: who a worker is, how often it beats (:class:`Heartbeat`), and when its silence means it
died.

A worker executing a run refreshes ``runs.heartbeat_at`` every :func:`heartbeat_interval_s`; a running run whose
heartbeat is older than :func:`stale_after_s` is treated as abandoned (see :mod:`alphaforge.runs.service`). Every
worker sharing a database should use the same ``$ALPHAFORGE_STALE_AFTER_S``.

Heartbeats are stamped and their age judged by the database's clock (:func:`alphaforge.db.clock.db_now_ms`),
never by a worker's: :func:`silent_running` is the staleness condition, evaluated by the database.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import ColumnElement, and_, func

from alphaforge.db.clock import db_now_ms
from alphaforge.db.models import Run
from alphaforge.enums import RunStatus
from alphaforge.errors import ConfigInvalid

log = logging.getLogger("alphaforge.runs.liveness")

HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_STALE_AFTER_S = 60.0


def worker_id() -> str:
    """This process as a worker: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def stale_after_s() -> float:
    """The staleness timeout: ``$ALPHAFORGE_STALE_AFTER_S`` or :data:`DEFAULT_STALE_AFTER_S`.

    CONFIG_INVALID unless the variable is a finite number of seconds > 0 (a timeout of 0 would declare every
    running run dead; ``alphaforge runs recover --stale-after 0`` says that explicitly).
    """
    raw = os.environ.get("ALPHAFORGE_STALE_AFTER_S")
    if raw is None or not raw.strip():
        return DEFAULT_STALE_AFTER_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigInvalid(f"ALPHAFORGE_STALE_AFTER_S={raw!r}: expected a number of seconds > 0 "
                            f"(default {DEFAULT_STALE_AFTER_S:g})", field="ALPHAFORGE_STALE_AFTER_S")
    return value


def stale_limit_ms(stale_after: float | None = None) -> int:
    """The staleness timeout in ms: ``stale_after`` seconds, or :func:`stale_after_s` when not given."""
    return int((stale_after_s() if stale_after is None else stale_after) * 1000)


# A run's last sign of life: its heartbeat (a run never claimed by a worker has none: when it last changed).
SIGN_OF_LIFE = func.coalesce(Run.heartbeat_at, Run.updated_at)


def silence_ms() -> ColumnElement[int]:
    """How long the run has been silent, in ms by the database's clock (a SQL expression)."""
    return db_now_ms() - SIGN_OF_LIFE


def silent_running(limit_ms: int) -> ColumnElement[bool]:
    """The staleness condition (SQL): the run is running and silent for longer than ``limit_ms``, by the
    database's clock."""
    return and_(Run.status == RunStatus.RUNNING, SIGN_OF_LIFE < db_now_ms() - limit_ms)


def heartbeat_interval_s() -> float:
    """How often a worker refreshes its heartbeat: :data:`HEARTBEAT_INTERVAL_S`, or a quarter of the staleness
    timeout when that is shorter, so a live worker always beats several times within the timeout."""
    return min(HEARTBEAT_INTERVAL_S, stale_after_s() / 4)


class Heartbeat:
    """Calls ``beat(run_hash)`` (e.g. :meth:`~alphaforge.runs.service.RunService.beat`, which refreshes
    ``runs.heartbeat_at``) every ``interval_s`` (default :func:`heartbeat_interval_s`) until the block
    ends."""

    def __init__(self, beat: Callable[[str], bool], run_hash: str, interval_s: float | None = None) -> None:
        self.beat, self.run_hash = beat, run_hash
        self.interval_s = heartbeat_interval_s() if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_hash[:8]}", daemon=True)
        self.beats = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.beat(self.run_hash):
                    self.beats += 1
            except Exception:  # noqa: BLE001 - a missed beat must not kill the run; staleness has slack
                log.warning("heartbeat for run %s failed", self.run_hash[:12], exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
