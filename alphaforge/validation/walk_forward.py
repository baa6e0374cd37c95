"""Walk-forward evaluation: anchored, expanding in-sample windows and contiguous out-of-sample folds.

Fold layout (documented)
    With ``n`` bars and ``k`` folds, edges are ``e_i = (i * n) // (k + 1)`` for ``i = 0..k+1``. Bars
    ``[0, e_1)`` (the first ``1/(k+1)``) are the initial training window; fold ``j`` (``1..k``) is the
    out-of-sample block ``[e_j, e_{j+1})``. Its in-sample window is *anchored and expanding*: every bar before
    the fold, ``[0, e_j)``. Each fold needs at least 2 bars (``n >= 2 (k + 1)``).

Modes (``config``: the validated ``[validation.walk_forward]`` section, a ``config.WalkForwardConfig``)
    ``fixed``: the configured params on every fold (``grid`` is ignored). ``optimize``: the candidates
    (:func:`grid_candidates`) are the cartesian product of ``grid`` (keys sorted, values in the given order),
    each point merged onto ``params`` and checked with ``resolve_params`` — invalid combinations (e.g.
    ``fast >= slow``) are skipped, duplicates kept once. For each fold the point with the highest in-sample
    Sharpe on ``[0, e_j)`` is chosen (ties → the first in grid order) and evaluated on the fold.

Evaluation and why it is look-ahead-free
    Each candidate's per-bar returns are computed *once* on the whole series and sliced. The backtest is
    causal — the exposure at bar t uses only bars ``<= t`` and the engine's per-bar equity only fills and
    prices at bars ``<= t`` (its own contract: truncating the data never changes the past) — so
    ``strategy_returns(frame)[:m] == strategy_returns(frame[:m])`` for every ``m``. A slice ``[0, e_j)`` is
    therefore exactly what a run on the training bars alone would give, and a fold slice ``[e_j, e_{j+1})`` is
    what a run on ``[0, e_{j+1})`` gives inside the fold: the strategy warms up on all earlier history, and
    only returns inside the fold count. The position held at the fold start is the candidate's own (decided
    at the last in-sample close); switching candidates between folds is not charged a trade. The tests check
    the property directly: changing bars after a fold's end never changes that fold's choice or result.

Per fold: bar range, ``start_ts``/``end_ts`` (first and last bar), chosen params, in-sample Sharpe (optimize),
OOS Sharpe, compounded return, max drawdown (from a start of 1), number of trade rows whose ts is in the fold.
Aggregate: Sharpe and compounded return of the stitched fold returns, fraction of folds with a positive return.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaforge import metrics
from alphaforge.backtest.engine import simulate, strategy_returns
from alphaforge.backtest.strategies import resolve_params
from alphaforge.config import WalkForwardConfig
from alphaforge.enums import WalkForwardMode
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import canonical_json
from alphaforge.numeric import zero_if_not_finite

if TYPE_CHECKING:  # pandas only in annotations: a permutation worker never imports it (issue #13, memory)
    import pandas as pd


@dataclass(frozen=True)
class FoldResult:
    fold: int
    start: int
    end: int
    start_ts: int
    end_ts: int
    params: dict[str, Any]
    in_sample_sharpe: float | None
    oos_sharpe: float
    oos_return: float
    max_drawdown: float
    n_trades: int


@dataclass(frozen=True)
class WalkForwardResult:
    mode: str
    folds: tuple[FoldResult, ...]
    oos_sharpe: float
    oos_return: float
    positive_fraction: float
    grid_points: int
    skipped_points: int

    def to_payload(self) -> dict[str, Any]:
        out = asdict(self)
        out["folds"] = [asdict(f) for f in self.folds]
        return out


def fold_edges(n: int, folds: int) -> list[int]:
    """``[e_0 .. e_{k+1}]``: bars ``[0, e_1)`` train first, fold j is ``[e_j, e_{j+1})``."""
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 1:
        raise ConfigInvalid(f"validation.walk_forward.folds must be an integer >= 1, got {folds!r}")
    if n < 2 * (folds + 1):
        raise DataInvalid(f"walk-forward with {folds} folds needs at least {2 * (folds + 1)} bars, got {n}")
    return [(i * n) // (folds + 1) for i in range(folds + 2)]


def grid_candidates(strategy: str, params: Mapping[str, Any],
                    grid: Mapping[str, Sequence[Any]]) -> tuple[list[dict[str, Any]], int]:
    """The candidate params of optimize mode: every grid point merged onto ``params`` and resolved by the
    strategy registry (in grid order, deduplicated), and the number of points skipped as invalid."""
    keys = sorted(grid)
    for key in keys:
        values = grid[key]
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigInvalid(f"validation.walk_forward.grid.{key} must be a non-empty list, got {values!r}")
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    for combo in itertools.product(*(grid[k] for k in keys)):
        try:
            resolved = resolve_params(strategy, {**params, **dict(zip(keys, combo, strict=True))})
        except ConfigInvalid:
            skipped += 1
            continue
        key = canonical_json(resolved)
        if key not in seen:
            seen.add(key)
            points.append(resolved)
    if not points:
        raise ConfigInvalid(f"validation.walk_forward.grid: none of its {skipped} points is valid for {strategy!r}")
    return points, skipped


def _max_drawdown(r: np.ndarray) -> float:
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(wealth)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - wealth / peak, 0.0)
    return float(dd.max())


def _compounded(r: np.ndarray) -> float:
    return float(np.prod(1.0 + r) - 1.0)


def walk_forward(
    frame: pd.DataFrame,
    strategy: str,
    params: Mapping[str, Any],
    execution: Any,
    config: WalkForwardConfig,
    *,
    bars_per_year: float,
) -> WalkForwardResult:
    """Anchored walk-forward of ``strategy`` on ``frame`` (see the module docstring)."""
    folds, grid = config.folds, config.grid
    edges = fold_edges(len(frame), folds)
    if config.mode == WalkForwardMode.OPTIMIZE and grid:
        candidates, skipped = grid_candidates(strategy, params, grid)
    else:
        candidates, skipped = [resolve_params(strategy, params)], 0
    ts = frame["ts"].to_numpy()

    # one full-series run per candidate; slices are look-ahead-free because the backtest is causal
    runs: dict[int, Any] = {}
    returns: list[np.ndarray] = []
    for i, cand in enumerate(candidates):
        if len(candidates) == 1:
            runs[i] = simulate(frame, strategy, cand, execution)
            returns.append(np.asarray(runs[i].returns, dtype=np.float64))
        else:
            returns.append(np.asarray(strategy_returns(frame, strategy, cand, execution), dtype=np.float64))

    results: list[FoldResult] = []
    stitched: list[np.ndarray] = []
    for j in range(1, folds + 1):
        start, end = edges[j], edges[j + 1]
        in_sample: float | None = None
        choice = 0
        if len(candidates) > 1:
            scores = [metrics.sharpe(r[:start], bars_per_year) for r in returns]
            choice = int(np.argmax(scores))  # first maximum: ties go to the earlier grid point
            in_sample = zero_if_not_finite(scores[choice])
        if choice not in runs:
            runs[choice] = simulate(frame, strategy, candidates[choice], execution)
        fold_r = returns[choice][start:end]
        trade_ts = runs[choice].trades["ts"].to_numpy()
        n_trades = int(np.searchsorted(trade_ts, ts[end - 1], side="right") - np.searchsorted(trade_ts, ts[start]))
        stitched.append(fold_r)
        results.append(
            FoldResult(
                fold=j,
                start=int(start),
                end=int(end),
                start_ts=int(ts[start]),
                end_ts=int(ts[end - 1]),
                params=dict(candidates[choice]),
                in_sample_sharpe=in_sample,
                oos_sharpe=zero_if_not_finite(metrics.sharpe(fold_r, bars_per_year)),
                oos_return=zero_if_not_finite(_compounded(fold_r)),
                max_drawdown=zero_if_not_finite(_max_drawdown(fold_r)),
                n_trades=n_trades,
            )
        )
    oos = np.concatenate(stitched)
    return WalkForwardResult(
        mode=str(config.mode),
        folds=tuple(results),
        oos_sharpe=zero_if_not_finite(metrics.sharpe(oos, bars_per_year)),
        oos_return=zero_if_not_finite(_compounded(oos)),
        positive_fraction=float(np.mean([f.oos_return > 0 for f in results])),
        grid_points=len(candidates),
        skipped_points=skipped,
    )


def walk_forward_spec(config: WalkForwardConfig) -> dict[str, Any]:
    """The JSON spec recorded in ``runs.walk_forward_spec_json`` (config-level facts only, no data)."""
    grid = config.grid
    return {
        "folds": config.folds,
        "mode": str(config.mode),
        "grid": {str(k): list(grid[k]) for k in sorted(grid)},
        "scheme": "anchored_expanding",
        "initial_window": "first 1/(folds+1) of the bars",
        "fold_edges": "e_i = (i * n) // (folds + 1)",
        "selection": "max in-sample sharpe, ties to the first grid point",
    }
