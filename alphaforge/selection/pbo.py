"""Probability of Backtest Overfitting by combinatorially symmetric cross-validation (CSCV).

Reference: Bailey, Borwein, López de Prado & Zhu (2017), "The probability of backtest overfitting",
J. of Computational Finance 20(4).

Procedure, for a ``T x N`` matrix of per-bar returns (rows = bars in time order, columns = configurations)
    1. **Blocks.** ``S`` (even, ``4 <= S <= 20``) blocks of ``m = T // S`` consecutive rows each. The
       ``T - S * m`` rows left over are dropped **from the start** (the oldest bars), so the blocks end on the
       last bar (``rows_dropped`` says how many).
    2. **Splits.** Every one of the ``C(S, S/2)`` ways to choose ``S/2`` blocks as the in-sample (IS) half,
       the other ``S/2`` blocks being the out-of-sample (OOS) half, in ``itertools.combinations`` order.
    3. **Performance** of a configuration on a half = its per-bar Sharpe ratio over the half's
       ``m * S / 2`` rows: ``mean / std(ddof=1)``, 0 when the variance is within rounding of 0
       (``var <= 1e-14 * mean square``). It is computed from **per-block sufficient statistics** — each
       block's count, sum and sum of squares of the column-demeaned returns — added over the half's blocks
       (one ``splits x S`` by ``S x N`` product), never by re-slicing the return matrix.
    4. **Selection.** ``n*`` = the configuration with the highest IS Sharpe (ties: the lowest column index).
    5. **Rank.** ``r`` = the rank of ``n*``'s OOS Sharpe among the ``N`` OOS Sharpes, ascending (1 = worst,
       ``N`` = best); tied values share the average of their ranks. ``omega = r / (N + 1)`` lies in
       ``(0, 1)`` and the logit is ``lambda = ln(omega / (1 - omega))``.
    6. **PBO** = the share of splits with ``lambda <= 0``: the IS-best configuration ranks at or below the
       OOS median.

Also reported: the logits (their distribution), ``prob_oos_loss`` (the share of splits in which ``n*``'s OOS
Sharpe is negative) and the **degradation** line: the OLS fit ``OOS Sharpe(n*) = intercept + slope * IS
Sharpe(n*)`` over the splits (per-bar Sharpe ratios; a negative slope is the paper's sign of overfitting;
``None`` when every split's IS Sharpe is the same).

Informative? Under pure noise the IS winner's OOS rank is uniform on ``1..N`` and the expected PBO is
``ceil(N/2) / N``: ``1/2`` for even ``N`` but ``(N + 1) / (2N)`` for odd ``N`` (0.67 at 3, 0.6 at 5), and
``omega`` moves in steps of ``1 / (N + 1)``. Below :data:`MIN_INFORMATIVE_CONFIGS` = 10 configurations the
grid is coarser than 10 % of the rank range and the noise value sits up to 17 points away from 1/2, so the
value is reported with ``informative = False`` and a note. The count is of **distinct** configurations
(``n_distinct_configs``: columns that differ on some used row): identical columns tie in every split, and an
IS winner tied with its copies sits at the middle of its tied group, so a grid of identical configurations
has ``omega = 1/2`` everywhere and a PBO of 1 that says nothing about overfitting. Fewer than 2 configurations, ``S < 4``, an odd
``S``, ``S > 20`` (``C(22, 11)`` is 705,432 splits) or fewer than 2 rows per block is ``CONFIG_INVALID``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphaforge.errors import ConfigInvalid
from alphaforge.selection._arrays import ZERO_VARIANCE_REL, as_matrix, json_float, json_summary

DEFAULT_BLOCKS = 16
MIN_BLOCKS = 4
MAX_BLOCKS = 20
MIN_ROWS_PER_BLOCK = 2
MIN_INFORMATIVE_CONFIGS = 10
#: Splits processed at once: at most ``SPLIT_CHUNK`` and ``SPLIT_CELLS / N`` (bounds the memory to a few
#: ``chunk x N`` float64 arrays of about 16 MB each).
SPLIT_CHUNK = 2048
SPLIT_CELLS = 1 << 21


@dataclass(frozen=True, eq=False)
class PBO:
    """The CSCV result (see the module docstring for every definition)."""

    value: float
    n_splits: int
    logits: np.ndarray = field(repr=False)  # one per split, in split order
    logit_mean: float
    degradation_slope: float  # NaN when undefined
    degradation_intercept: float
    prob_oos_loss: float
    n_configs: int
    n_distinct_configs: int
    n_blocks: int
    block_rows: int
    n_obs_used: int
    rows_dropped: int
    informative: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "value": json_float(self.value), "n_splits": self.n_splits,
            "logits": {"summary": json_summary(self.logits), "values": [json_float(x) for x in self.logits.tolist()]},
            "logit_mean": json_float(self.logit_mean), "degradation_slope": json_float(self.degradation_slope),
            "degradation_intercept": json_float(self.degradation_intercept),
            "prob_oos_loss": json_float(self.prob_oos_loss), "n_configs": self.n_configs,
            "n_distinct_configs": self.n_distinct_configs,
            "n_blocks": self.n_blocks, "block_rows": self.block_rows, "n_obs_used": self.n_obs_used,
            "rows_dropped": self.rows_dropped, "informative": self.informative, "note": self.note,
        }


def split_matrix(n_blocks: int) -> np.ndarray:
    """The ``C(S, S/2) x S`` 0/1 matrix of IS blocks, one row per split in ``itertools.combinations`` order."""
    combos = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    out = np.zeros((len(combos), n_blocks))
    out[np.repeat(np.arange(len(combos)), n_blocks // 2), np.asarray(combos).ravel()] = 1.0
    return out


def _check(n_configs: int, n_obs: int, n_blocks: int) -> None:
    if n_configs < 2:
        raise ConfigInvalid(f"PBO needs at least 2 configurations, got {n_configs}", field="n_configs")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int | np.integer):
        raise ConfigInvalid(f"n_blocks must be an integer, got {n_blocks!r}", field="n_blocks")
    if n_blocks < MIN_BLOCKS or n_blocks % 2 or n_blocks > MAX_BLOCKS:
        raise ConfigInvalid(f"n_blocks must be even and in [{MIN_BLOCKS}, {MAX_BLOCKS}], got {n_blocks}",
                            field="n_blocks")
    if n_obs < MIN_ROWS_PER_BLOCK * n_blocks:
        raise ConfigInvalid(f"PBO with {n_blocks} blocks needs at least {MIN_ROWS_PER_BLOCK * n_blocks} rows "
                            f"({MIN_ROWS_PER_BLOCK} per block), got {n_obs}", field="n_blocks")


def _half_sharpe(sums: np.ndarray, squares: np.ndarray, count: int, center: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe of every (split, configuration) from the sums of the demeaned returns over a half."""
    mean_dev = sums / count
    var = np.maximum(squares - sums * mean_dev, 0.0) / (count - 1)
    mean = mean_dev + center
    mean_square = squares / count + 2.0 * center * mean_dev + center * center
    ok = var > ZERO_VARIANCE_REL * mean_square
    return np.where(ok, mean / np.sqrt(np.where(ok, var, 1.0)), 0.0)


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = DEFAULT_BLOCKS) -> PBO:
    """CSCV probability of backtest overfitting of the configurations (columns) of ``returns``."""
    matrix = as_matrix(returns, "returns")
    n_obs, n_configs = matrix.shape
    _check(n_configs, n_obs, n_blocks)
    block_rows = n_obs // n_blocks
    dropped = n_obs - block_rows * n_blocks
    used = matrix[dropped:]
    center = used.mean(axis=0)
    dev = (used - center).reshape(n_blocks, block_rows, n_configs)
    block_sum = dev.sum(axis=1)  # S x N
    block_sq = (dev * dev).sum(axis=1)
    total_sum, total_sq = block_sum.sum(axis=0), block_sq.sum(axis=0)
    half = block_rows * n_blocks // 2
    splits = split_matrix(n_blocks)
    n_splits = splits.shape[0]
    is_best = np.empty(n_splits)
    oos_best = np.empty(n_splits)
    logits = np.empty(n_splits)
    step = max(1, min(SPLIT_CHUNK, SPLIT_CELLS // n_configs))
    for start in range(0, n_splits, step):
        chunk = splits[start:start + step]
        is_sum, is_sq = chunk @ block_sum, chunk @ block_sq
        is_sharpe = _half_sharpe(is_sum, is_sq, half, center)
        oos_sharpe = _half_sharpe(total_sum - is_sum, total_sq - is_sq, half, center)
        rows = np.arange(chunk.shape[0])
        best = np.argmax(is_sharpe, axis=1)
        chosen = oos_sharpe[rows, best][:, None]
        rank = (oos_sharpe < chosen).sum(axis=1) + ((oos_sharpe == chosen).sum(axis=1) + 1) / 2.0
        omega = rank / (n_configs + 1.0)
        logits[start:start + chunk.shape[0]] = np.log(omega / (1.0 - omega))
        is_best[start:start + chunk.shape[0]] = is_sharpe[rows, best]
        oos_best[start:start + chunk.shape[0]] = chosen[:, 0]
    slope, intercept = _degradation(is_best, oos_best)
    distinct = int(np.unique(used, axis=1).shape[1])
    informative = distinct >= MIN_INFORMATIVE_CONFIGS
    note = ("" if informative else
            f"only {distinct} distinct configurations (of {n_configs}): below {MIN_INFORMATIVE_CONFIGS} the OOS "
            "rank grid is coarser than 10% and the pure-noise PBO is not 1/2, so this value says little about "
            "overfitting")
    return PBO(value=float(np.mean(logits <= 0.0)), n_splits=n_splits, logits=logits,
               logit_mean=float(np.mean(logits)), degradation_slope=slope, degradation_intercept=intercept,
               prob_oos_loss=float(np.mean(oos_best < 0.0)), n_configs=n_configs,
               n_distinct_configs=distinct, n_blocks=n_blocks,
               block_rows=block_rows, n_obs_used=block_rows * n_blocks, rows_dropped=dropped,
               informative=informative, note=note)


def _degradation(is_perf: np.ndarray, oos_perf: np.ndarray) -> tuple[float, float]:
    """OLS ``oos = intercept + slope * is`` over the splits; ``(nan, nan)`` when the IS values do not vary."""
    x_dev = is_perf - is_perf.mean()
    sxx = float(np.dot(x_dev, x_dev))
    if sxx <= ZERO_VARIANCE_REL * float(np.dot(is_perf, is_perf)) or sxx == 0.0:
        return math.nan, math.nan
    slope = float(np.dot(x_dev, oos_perf - oos_perf.mean())) / sxx
    return slope, float(oos_perf.mean() - slope * is_perf.mean())
