"""Features: the parquet cache (hit vs cold build) and the indicator kernels (vs pandas).

* Cache: ``FeatureCache.get_or_build`` of 5 indicators over 1M bars (CI: 100k), backed by the real SQLite
  Store, called the way the pipeline calls it (``columns=[<indicator column>]``). Ours = all 5 served as hits
  (file read once, sha256 of the whole file re-checked, the column decoded); baseline = the cold path
  (compute + parquet encode + digest + atomic fsync'd publish + features_cache row). The hit returning both
  ``ts`` and the column is recorded in ``extra_info`` too.
* Kernels: the 7 registered indicators over 1M bars against the idiomatic pandas rolling/ewm equivalents
  (same definitions; pandas baselines get float64 Series ready-made). Peak traced memory (tracemalloc) of
  chunked (64k-bar chunks) vs contiguous computation is recorded in ``extra_info``.
"""

from __future__ import annotations

import functools
import itertools
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import best_time, report, size

from alphaforge.db.engine import dispose_engine
from alphaforge.db.store import Store
from alphaforge.features.cache import FeatureCache
from alphaforge.features.indicators import INDICATORS, compute_chunked

N_BARS = size(1_000_000, 100_000)
DATASET = "b" * 64
TARGET_HIT_SPEEDUP = 10.0
CACHED: list[tuple[str, dict[str, Any]]] = [
    ("sma", {"window": 20}), ("ema", {"span": 20}), ("rsi", {"window": 14}), ("zscore", {"window": 20}),
    ("atr", {"window": 14}),
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(20240131)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, N_BARS)))
    return pd.DataFrame({
        "ts": 1_420_000_000_000_000_000 + 60_000_000_000 * np.arange(N_BARS, dtype=np.int64),
        "open": close.astype(np.float32),
        "high": (close * (1.0 + rng.uniform(0.0, 1e-3, N_BARS))).astype(np.float32),
        "low": (close * (1.0 - rng.uniform(0.0, 1e-3, N_BARS))).astype(np.float32),
        "close": close.astype(np.float32),
        "volume": rng.integers(0, 50_000, N_BARS),
    })


def _interleaved(ours: Any, baseline: Any, rounds: int = 5, **kw: Any) -> tuple[float, float]:
    """Best times of ``ours`` and ``baseline`` measured in alternation (fair under a fluctuating load)."""
    best_ours = best_baseline = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, best_time(ours, rounds=1))
        best_baseline = min(best_baseline, best_time(baseline, rounds=1, **kw))
    return best_ours, best_baseline


def _get_all(cache: FeatureCache, frame: pd.DataFrame, *, value_only: bool = False) -> list[bool]:
    hits = []
    for name, params in CACHED:
        columns = [INDICATORS[name].column_name(params)] if value_only else None
        _, entry = cache.get_or_build(dataset_hash=DATASET, frame=frame, indicator=name, params=params, seed_root=1,
                                      columns=columns)
        hits.append(entry.hit)
    return hits


def test_cache_hit_vs_cold_build(benchmark: Any, frame: pd.DataFrame, tmp_path: Path) -> None:
    counter = itertools.count()
    current: dict[str, FeatureCache] = {}

    def fresh() -> None:  # untimed: an empty cache directory and an empty migrated database
        i = next(counter)
        current["cache"] = FeatureCache(tmp_path / f"cache{i}", Store(f"sqlite:///{tmp_path / f'db{i}.sqlite'}"))

    def cold() -> None:
        assert not any(_get_all(current["cache"], frame, value_only=True))

    def hit() -> None:  # as the pipeline asks: the feature column, aligned with the frame it already holds
        assert all(_get_all(current["cache"], frame, value_only=True))

    def hit_with_ts() -> None:
        assert all(_get_all(current["cache"], frame))

    fresh()
    cold()
    ours, baseline = _interleaved(hit, cold, rounds=5, setup=fresh)
    ours = min(ours, best_time(hit, rounds=10))  # the last cache built is warm: more hits
    with_ts = best_time(hit_with_ts, rounds=10)
    stats = current["cache"].stats
    benchmark.extra_info.update({"n_bars": N_BARS, "indicators": [n for n, _ in CACHED], "stats": dict(stats),
                                 "hit_with_ts_s": round(with_ts, 6), "speedup_with_ts": round(baseline / with_ts, 3)})
    print(f"\n[feature cache] hit returning ts + column: {with_ts:.4f}s ({baseline / with_ts:.2f}x vs cold)")
    # Target 10x (11.5-12.7x measured on a quiet 2-core box); the floor leaves room for a loaded machine: a hit is
    # bounded below by sha256 of the whole file (~1.2-2 ms per 2-3.6 MB) overlapped with its decoding, while a
    # cold build of these kernels is ~30-40 ms.
    benchmark.extra_info["target"] = TARGET_HIT_SPEEDUP
    report(benchmark, f"feature cache {N_BARS} bars x {len(CACHED)} indicators: hit vs cold build "
           f"(target {TARGET_HIT_SPEEDUP:.0f}x)", ours, baseline, floor=8.0, ci_floor=2.6)
    benchmark.pedantic(hit, rounds=1, iterations=1)
    for i in range(next(counter)):
        dispose_engine(f"sqlite:///{tmp_path / f'db{i}.sqlite'}")


def _pandas_all(s: pd.Series, h: pd.Series, lo: pd.Series) -> list[Any]:
    """The same seven definitions in idiomatic pandas."""
    d = s.diff()
    gain = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    prev = s.shift()
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    return [
        s.rolling(20).mean(),
        s.ewm(span=20, adjust=False).mean(),
        s.pct_change().rolling(20).std(),
        np.log(s).diff(),
        100 * gain / (gain + loss),
        (s - s.rolling(20).mean()) / s.rolling(20).std(),
        tr.ewm(alpha=1 / 14, adjust=False).mean(),
    ]


def _peak_bytes(fn: Any) -> int:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak)


def test_indicators_vs_pandas(benchmark: Any, frame: pd.DataFrame) -> None:
    arrays = {c: frame[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close")}
    s, h, lo = pd.Series(arrays["close"]), pd.Series(arrays["high"]), pd.Series(arrays["low"])

    def ours() -> None:
        for spec in INDICATORS.values():
            spec.compute(arrays)

    ours_s, baseline_s = _interleaved(ours, lambda: _pandas_all(s, h, lo), rounds=7)
    chunk = 65_536
    peaks: dict[str, dict[str, float]] = {}
    for name in ("sma", "zscore", "volatility", "rsi", "atr"):
        contiguous = _peak_bytes(functools.partial(compute_chunked, name, arrays))
        chunked = _peak_bytes(functools.partial(compute_chunked, name, arrays, None, chunk))
        peaks[name] = {"contiguous_mb": round(contiguous / 2**20, 2), "chunked_mb": round(chunked / 2**20, 2)}
    per_indicator = {name: round(best_time(functools.partial(spec.compute, arrays)), 5)
                     for name, spec in INDICATORS.items()}
    benchmark.extra_info.update({"n_bars": N_BARS, "chunk_size": chunk, "peak_traced_memory": peaks,
                                 "ours_per_indicator_s": per_indicator})
    print(f"\npeak traced memory (MB), contiguous vs {chunk}-bar chunks: {peaks}")
    # 1.4-2.3x measured on the shared 2-core box (1.1x with one 1M-bar chunk instead of 64k-bar chunks)
    report(benchmark, f"indicators x{len(INDICATORS)} {N_BARS} bars: ours vs pandas rolling/ewm", ours_s, baseline_s,
           floor=1.2, ci_floor=0.67)
    benchmark.pedantic(ours, rounds=1, iterations=1)
