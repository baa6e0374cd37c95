"""Shared benchmark conventions.

Every benchmark measures our path and a baseline in the same run and reports the ratio (the machine is shared
and noisy; ratios are the figures that count). Two sizes:

* full (default): ``pytest benchmarks/`` is the performance regression run; every ratio is held to its
  ``floor``.
* CI (``ALPHAFORGE_BENCH_CI=1`` or ``CI=true``): reduced sizes that keep the whole suite within a few minutes
  on a 2-core box; every ratio is held to its ``ci_floor``, calibrated at that size over 10 consecutive runs
  (benchmarks/README.md, "CI floors"). A ratio that cannot be guarded at CI size (too noisy, or not measuring
  the property there) has ``ci_floor=None``: it is printed and recorded, not asserted.

``ALPHAFORGE_BENCH_RECORD_ONLY=1`` prints and records every ratio without asserting any floor: the mode the
CI floors are calibrated in (a failed floor would otherwise hide the ratios after it).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

CI_SIZE = os.environ.get("ALPHAFORGE_BENCH_CI") == "1" or os.environ.get("CI") == "true"
RECORD_ONLY = os.environ.get("ALPHAFORGE_BENCH_RECORD_ONLY") == "1"


def size(full: int, ci: int) -> int:
    """The problem size for this run: ``full`` normally, ``ci`` at CI size."""
    return ci if CI_SIZE else full


def best_time(fn: Callable[[], Any], rounds: int = 3, setup: Callable[[], Any] | None = None) -> float:
    """Best wall time of ``rounds`` calls of ``fn`` (``setup`` runs untimed before each call)."""
    best = float("inf")
    for _ in range(max(1, rounds)):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def report(benchmark: Any, name: str, ours_s: float, baseline_s: float, *, floor: float,
           ci_floor: float | None) -> float:
    """Record and print ``speedup = baseline_s / ours_s``; assert it against the floor of this size.

    Floors are expressed as "ours is at least ``floor`` times as fast as the baseline" (e.g. 0.75 for
    "≥ 0.75 × the engine's own limit", 5.0 for "≥ 5 × faster"). ``floor`` holds at full size, ``ci_floor`` at
    CI size (``None``: not asserted at CI size, the ratio is too noisy there).
    """
    speedup = baseline_s / ours_s if ours_s > 0 else float("inf")
    asserted = None if RECORD_ONLY else (ci_floor if CI_SIZE else floor)
    benchmark.extra_info.update(
        {"ours_s": round(ours_s, 6), "baseline_s": round(baseline_s, 6), "speedup": round(speedup, 3),
         "floor": floor, "ci_floor": ci_floor, "ci_size": CI_SIZE, "asserted_floor": asserted}
    )
    shown = "not asserted" if asserted is None else f"floor {asserted:.3g}x"
    print(f"\n[{name}] ours={ours_s:.4f}s baseline={baseline_s:.4f}s speedup={speedup:.2f}x ({shown})")
    if asserted is not None:
        assert speedup >= asserted, f"{name}: speedup {speedup:.2f}x below floor {asserted:.3g}x"
    return speedup
