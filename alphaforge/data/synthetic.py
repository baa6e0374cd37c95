"""A deterministic synthetic OHLCV dataset for `alphaforge demo` and tests.

Daily bars (business days) with everything the pipeline has something to show for: alternating trend /
mean-reverting / high-volatility regimes, AR(1) autocorrelation in returns (so HADJ-BB picks a block length),
a few multi-day gaps, occasional zero-volume and flat bars. Drawn from ``rng_for(seed, "synthetic")``: the
same ``(n_bars, seed)`` always gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphaforge.hashing import rng_for

START = "2000-01-03"
# (drift per bar, volatility per bar, AR(1) coefficient) for each regime
REGIMES = ((0.0008, 0.010, 0.25), (-0.0002, 0.012, -0.20), (0.0000, 0.025, 0.10), (0.0006, 0.008, 0.35))


def synthetic_ohlcv(n_bars: int = 5000, seed: int = 7, freq: str = "B") -> pd.DataFrame:
    """``n_bars`` bars at ``freq`` (pandas offset: business days by default; e.g. ``"5min"`` for long
    series, which would otherwise run past the int64-nanosecond range): timestamp (UTC), open, high, low,
    close, volume."""
    if n_bars < 2:
        raise ValueError("n_bars must be at least 2")
    rng = rng_for(seed, "synthetic")
    regime_len = max(50, n_bars // 12)
    regime = (np.arange(n_bars) // regime_len) % len(REGIMES)
    drift, vol, phi = (np.array([r[k] for r in REGIMES])[regime] for k in range(3))
    # the regimes are calibrated for daily bars: scale drift by the bar spacing and volatility by its root
    spacing_days = pd.tseries.frequencies.to_offset(freq).nanos / 86_400e9 if freq != "B" else 1.0
    drift, vol = drift * spacing_days, vol * np.sqrt(spacing_days)
    shocks = rng.standard_normal(n_bars) * vol
    returns = np.empty(n_bars)
    prev = 0.0
    for i in range(n_bars):  # AR(1) around the regime drift
        prev = drift[i] + phi[i] * (prev - drift[i]) + shocks[i]
        returns[i] = prev
    close = 100.0 * np.exp(np.cumsum(returns))
    gap_open = np.exp(rng.normal(0.0, vol * 0.3))
    open_ = np.r_[100.0, close[:-1]] * gap_open
    spread = np.abs(rng.normal(0.0, vol, n_bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread * 0.9
    volume = rng.integers(10_000, 1_000_000, n_bars)
    volume[rng.random(n_bars) < 0.004] = 0
    flat = rng.random(n_bars) < 0.002
    open_[flat] = high[flat] = low[flat] = close[flat]
    days = pd.date_range(START, periods=n_bars + n_bars // 200 * 5, freq=freq, tz="UTC")
    keep = np.ones(len(days), dtype=bool)
    for start in rng.choice(np.arange(10, len(days) - 10), size=n_bars // 200, replace=False):
        keep[start:start + 5] = False  # a missing week: a gap
    timestamps = days[keep][:n_bars]
    if len(timestamps) < n_bars:  # the gaps overlapped: extend past the end
        extra = pd.date_range(days[-1], periods=n_bars - len(timestamps) + 1, freq=freq, tz="UTC")[1:]
        timestamps = pd.DatetimeIndex(timestamps.append(extra))
    return pd.DataFrame({
        "timestamp": timestamps, "open": open_, "high": high, "low": low, "close": close, "volume": volume,
    })
