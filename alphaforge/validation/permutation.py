"""Permutation test: does the strategy's rule beat the same bars in random order?

Null hypothesis: the rule has no edge over the bars' *order*. Under the null, shuffling the bars leaves the
distribution of the strategy statistic unchanged.

Permutation scheme (documented)
    Every bar ``t >= 1`` is described relative to the previous close ``c[t-1]`` by four log offsets
    ``log(o[t]/c[t-1])``, ``log(h[t]/c[t-1])``, ``log(l[t]/c[t-1])``, ``log(c[t]/c[t-1])`` plus its volume.
    One permutation shuffles these bar tuples *jointly* (bar 0 stays first and unchanged; timestamps stay in
    place) and rebuilds the prices from the first close: ``log c'[t] = log c[0] + cumsum(close offsets)``,
    then ``o'[t] = c'[t-1] * exp(open offset)`` and likewise high and low. Because a bar's four offsets move
    together, ``low <= open, close <= high`` holds in every permuted frame (exp and the float32 cast are
    monotone), gaps between bars are kept, and the close-to-close return distribution is exactly preserved
    — only its order changes. The strategy is then re-run (``backtest.strategy_returns``) on the permuted
    frame and the statistic (default ``sharpe``; ``cagr``) computed with :mod:`alphaforge.metrics`.

p-value: ``(1 + #{null >= observed}) / (1 + n)`` — never 0, in ``(0, 1]``. ``n == 0`` disables the test.

Seed: ``seed`` is ``hashing.component_seed(seed_root, "permutation")``; the generator is
``np.random.default_rng(seed)`` — exactly ``hashing.rng_for(seed_root, "permutation")``. Permutation ``i`` is
the ``i``-th ``Generator.permutation(n - 1)`` call, so batching does not change the null distribution. The
price rebuild is vectorized over a batch of permutations; the strategy runs once per permutation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import UINT32, sha256_hex

STATISTICS: tuple[str, ...] = ("sharpe", "cagr")
#: Permuted price values held per batch (4 price columns x bars x permutations).
_BATCH_VALUES = 1 << 22


@dataclass(frozen=True)
class PermutationResult:
    pvalue: float
    observed: float
    n: int
    null_digest: str
    null_mean: float
    null_std: float
    statistic: str = "sharpe"

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def statistic_fn(name: str, bars_per_year: float) -> Callable[[np.ndarray], float]:
    """The statistic ``returns -> float`` named ``name`` (the definitions of :mod:`alphaforge.metrics`)."""
    from alphaforge import metrics

    if name == "sharpe":
        return lambda r: float(metrics.sharpe(r, bars_per_year))
    if name == "cagr":
        return lambda r: float(metrics.cagr(r, bars_per_year))
    raise ConfigInvalid(f"permutation statistic must be one of {STATISTICS}, got {name!r}")


def bar_offsets(frame: pd.DataFrame) -> tuple[float, np.ndarray]:
    """``(base log close, offsets)`` with offsets ``(4, n-1)``: open, high, low, close of bar t vs close t-1."""
    cols = ("open", "high", "low", "close")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataInvalid(f"permutation test needs OHLC columns; missing {missing}")
    prices = np.vstack([frame[c].to_numpy(dtype=np.float64) for c in cols])
    bad = np.argwhere(~(np.isfinite(prices) & (prices > 0)))
    if bad.size:
        col, row = bad[0]
        raise DataInvalid(f"permutation test needs finite positive prices: row {int(row)} column {cols[col]!r}")
    logp = np.log(prices)
    prev_close = logp[3, :-1]
    return float(logp[3, 0]), logp[:, 1:] - prev_close


def rebuild_prices(base: float, offsets: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Permuted prices ``(4, batch, n)`` float64 (open, high, low, close) for permutations ``(batch, n-1)``."""
    b, m = perms.shape
    out = np.empty((4, b, m + 1))
    log_close = out[3]
    log_close[:, 0] = base
    np.cumsum(np.take(offsets[3], perms), axis=1, out=log_close[:, 1:])
    log_close[:, 1:] += base
    for j in range(3):
        np.add(np.take(offsets[j], perms), log_close[:, :-1], out=out[j, :, 1:])
        out[j, :, 0] = base  # replaced by the given bar-0 prices by the caller
    return np.exp(out, out=out)


def permuted_frames(frame: pd.DataFrame, rng: np.random.Generator, n: int) -> Any:
    """Yield ``n`` permuted copies of ``frame`` (see the module docstring), in permutation order."""
    base, offsets = bar_offsets(frame)
    first = [frame[c].to_numpy()[:1] for c in ("open", "high", "low", "close")]
    m = offsets.shape[1]
    volume = frame["volume"].to_numpy() if "volume" in frame.columns else None
    per_batch = max(1, _BATCH_VALUES // (4 * (m + 1)))
    done = 0
    while done < n:
        count = min(per_batch, n - done)
        perms = np.vstack([rng.permutation(m) for _ in range(count)]) if m else np.zeros((count, 0), np.intp)
        prices = rebuild_prices(base, offsets, perms).astype(np.float32)
        for i in range(count):
            out = frame.copy(deep=False)
            for j, col in enumerate(("open", "high", "low", "close")):
                values = prices[j, i]
                values[0] = first[j][0]  # bar 0 exactly as given
                out[col] = values
            if volume is not None:
                out["volume"] = np.concatenate([volume[:1], volume[1:][perms[i]]])
            yield out
        done += count


def permutation_test(
    frame: pd.DataFrame,
    strategy: str,
    params: Mapping[str, Any],
    execution: Any,
    *,
    n: int,
    seed: int,
    statistic: str = "sharpe",
) -> PermutationResult | None:
    """The permutation p-value of ``strategy`` on ``frame`` (``None`` when ``n == 0``)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigInvalid(f"validation.permutation.n must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < UINT32:
        raise ConfigInvalid(f"permutation seed must be a uint32, got {seed!r}")
    if n == 0:
        return None
    if len(frame) < 2:
        raise DataInvalid(f"permutation test needs at least 2 bars, got {len(frame)}")
    from alphaforge.backtest import strategy_returns

    stat = statistic_fn(statistic, float(execution.bars_per_year))
    observed = stat(strategy_returns(frame, strategy, params, execution))
    rng = np.random.default_rng(int(seed))
    null = np.empty(int(n))
    for i, permuted in enumerate(permuted_frames(frame, rng, int(n))):
        null[i] = stat(strategy_returns(permuted, strategy, params, execution))
    exceed = int(np.count_nonzero(null >= observed))
    return PermutationResult(
        pvalue=(1.0 + exceed) / (1.0 + n),
        observed=float(observed),
        n=int(n),
        null_digest=sha256_hex(np.ascontiguousarray(null, dtype="<f4").tobytes()),
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if n > 1 else 0.0,
        statistic=statistic,
    )
