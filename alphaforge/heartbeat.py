"""A background heartbeat for the run a worker is executing (see :mod:`alphaforge.service`)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from alphaforge.liveness import heartbeat_interval_s
from alphaforge.service import RunService

log = logging.getLogger("alphaforge.heartbeat")


class Heartbeat:
    """Refreshes ``runs.heartbeat_at`` every ``interval_s`` (default :func:`heartbeat_interval_s`) until the block
    ends."""

    def __init__(self, service: RunService, run_hash: str, interval_s: float | None = None) -> None:
        self.service, self.run_hash = service, run_hash
        self.interval_s = heartbeat_interval_s() if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_hash[:8]}", daemon=True)
        self.beats = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.service.beat(self.run_hash):
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
