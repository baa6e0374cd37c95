"""Synthetic series with known structure, for validation tests and benchmarks (never used by a run).

* :func:`ar1_returns` — ``x[t] = phi * x[t-1] + e[t]`` plus a drift ``mu``; ``e ~ N(0, sigma^2)``. Computed as the
  convolution of ``e`` with ``phi^k`` truncated where ``|phi|^k < 1e-16`` (identical to the recursion started
  from 0, to rounding), so it is pure numpy and fast.
* :func:`ohlcv_frame` — a normalized OHLCV frame (``ts`` int64 ns, float32 OHLC, int64 volume) whose
  close-to-close log returns are such a series; open/high/low are coherent (``low <= open, close <= high``).

Random draws come from ``hashing.rng_for(seed, "synthetic")``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alphaforge.hashing import rng_for

_T0_NS = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z
_DAY_NS = 86_400 * 10**9


def ar1_returns(n: int, phi: float, *, seed: int, mu: float = 0.0, sigma: float = 0.01) -> np.ndarray:
    """``n`` AR(1) returns with coefficient ``phi`` (``|phi| < 1``), drift ``mu`` and noise ``sigma``."""
    if not -1.0 < phi < 1.0:
        raise ValueError(f"phi must be in (-1, 1), got {phi}")
    e = rng_for(seed, "synthetic").standard_normal(n) * sigma
    if phi == 0.0:
        return e + mu
    terms = min(n, int(math.ceil(math.log(1e-16) / math.log(abs(phi)))) + 1)
    kernel = phi ** np.arange(terms)
    return np.convolve(e, kernel)[:n] + mu


def ohlcv_frame(
    n: int, *, phi: float = 0.0, seed: int = 0, mu: float = 0.0, sigma: float = 0.01, start_price: float = 100.0,
    bar_ns: int = _DAY_NS,
) -> pd.DataFrame:
    """A coherent OHLCV frame whose log close-to-close returns are :func:`ar1_returns`."""
    r = ar1_returns(n, phi, seed=seed, mu=mu, sigma=sigma)
    r[0] = 0.0
    rng = rng_for(seed + 1 if seed + 1 < 2**32 else 0, "synthetic")
    close = start_price * np.exp(np.cumsum(r))
    prev = np.concatenate(([start_price], close[:-1]))
    open_ = prev * np.exp(rng.standard_normal(n) * sigma * 0.1)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * sigma * 0.3)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * sigma * 0.3)
    return pd.DataFrame(
        {
            "ts": _T0_NS + np.arange(n, dtype=np.int64) * np.int64(bar_ns),
            "open": open_.astype(np.float32),
            "high": high.astype(np.float32),
            "low": low.astype(np.float32),
            "close": close.astype(np.float32),
            "volume": rng.integers(100, 10_000, n).astype(np.int64),
        }
    )
