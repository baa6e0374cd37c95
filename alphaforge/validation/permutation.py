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
A null value within rounding of the observed one (``1e-10 * max(1, |observed|)``) counts as a tie, i.e. as
``>=`` (conservative: a rule whose statistic does not depend on bar order gets ``p = 1``, not noise).

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
TIE_TOLERANCE = 1e-10
#: Permuted price values per batch (4 price columns x bars x permutations): small enough to stay in cache.
_BATCH_VALUES = 1 << 19
_RECORD = np.dtype((np.void, 32))  # a bar's four float64 offsets


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


def permutation_pvalue(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + len(null))``; nulls within ``TIE_TOLERANCE`` (relative) are ties."""
    exceed = int(np.count_nonzero(null >= observed - TIE_TOLERANCE * max(1.0, abs(observed))))
    return (1.0 + exceed) / (1.0 + len(null))


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
    """Permuted float32 prices ``(4, batch, n)`` (open, high, low, close) for permutations ``(batch, n-1)``.

    The four offsets of a bar are gathered together as one 32-byte record. Log prices are accumulated in
    float64 and only the final ``exp`` is rounded to float32. Column 0 of open/high/low is set to the first
    close; the caller puts the given bar-0 prices there.
    """
    b, m = perms.shape
    records = np.ascontiguousarray(offsets.T).view(_RECORD).ravel()
    moved = np.take(records, perms).view(np.float64).reshape(b, m, 4)
    log_close = np.empty((b, m + 1))
    log_close[:, 0] = base
    np.cumsum(moved[:, :, 3], axis=1, out=log_close[:, 1:])
    log_close[:, 1:] += base
    prices = np.empty((4, b, m + 1), dtype=np.float32)
    np.exp(log_close, out=prices[3])
    work = np.empty((b, m))
    for j in range(3):
        np.add(moved[:, :, j], log_close[:, :-1], out=work)
        np.exp(work, out=prices[j, :, 1:])
        prices[j, :, 0] = prices[3, :, 0]
    return prices


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
        prices = rebuild_prices(base, offsets, perms)
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
    return PermutationResult(
        pvalue=permutation_pvalue(observed, null),
        observed=float(observed),
        n=int(n),
        null_digest=sha256_hex(np.ascontiguousarray(null, dtype="<f4").tobytes()),
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if n > 1 else 0.0,
        statistic=statistic,
    )
