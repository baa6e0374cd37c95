"""Worker liveness: who a worker is, how often it beats, and when its silence means it died.

A worker executing a run refreshes ``runs.heartbeat_at`` every :func:`heartbeat_interval_s`; a running run whose
heartbeat is older than :func:`stale_after_s` is treated as abandoned (see :mod:`alphaforge.service`). Every
worker sharing a database should use the same ``$ALPHAFORGE_STALE_AFTER_S``.
"""

from __future__ import annotations

import math
import os
import socket

from alphaforge.errors import ConfigInvalid

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


def heartbeat_interval_s() -> float:
    """How often a worker refreshes its heartbeat: :data:`HEARTBEAT_INTERVAL_S`, or a quarter of the staleness
    timeout when that is shorter, so a live worker always beats several times within the timeout."""
    return min(HEARTBEAT_INTERVAL_S, stale_after_s() / 4)
