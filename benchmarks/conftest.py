"""Shared benchmark conventions.

Every benchmark measures our path and a baseline in the same run and reports the ratio (the machine is shared
and noisy; ratios are the figures that count). Full size and ratio floors by default (``pytest benchmarks/``
is the performance regression run); with ``CI=true`` or ``ALPHAFORGE_BENCH_SMOKE=1`` sizes are reduced and
floors are not asserted (a smoke test that the benchmarks still run).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

SMOKE = os.environ.get("ALPHAFORGE_BENCH_SMOKE") == "1" or os.environ.get("CI") == "true"


def size(full: int, smoke: int) -> int:
    """The problem size for this run: ``full`` normally, ``smoke`` in smoke mode."""
    return smoke if SMOKE else full


def best_time(fn: Callable[[], Any], rounds: int = 3, setup: Callable[[], Any] | None = None) -> float:
    """Best wall time of ``rounds`` calls of ``fn`` (``setup`` runs untimed before each call)."""
    best = float("inf")
    for _ in range(max(1, 1 if SMOKE else rounds)):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def report(benchmark: Any, name: str, ours_s: float, baseline_s: float, *, floor: float) -> float:
    """Record and print ``speedup = baseline_s / ours_s``; assert ``speedup >= floor`` unless smoke.

    ``floor`` is expressed as "ours is at least ``floor`` times as fast as the baseline" (e.g. 0.75 for
    "≥ 0.75 × the engine's own limit", 5.0 for "≥ 5 × faster").
    """
    speedup = baseline_s / ours_s if ours_s > 0 else float("inf")
    benchmark.extra_info.update(
        {"ours_s": round(ours_s, 6), "baseline_s": round(baseline_s, 6), "speedup": round(speedup, 3),
         "floor": floor, "smoke": SMOKE}
    )
    print(f"\n[{name}] ours={ours_s:.4f}s baseline={baseline_s:.4f}s speedup={speedup:.2f}x (floor {floor}x)")
    if not SMOKE:
        assert speedup >= floor, f"{name}: speedup {speedup:.2f}x below floor {floor}x"
    return speedup


@pytest.fixture
def smoke() -> bool:
    return SMOKE
