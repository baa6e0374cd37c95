"""Walk-forward: fold layout, fixed/optimize equal naive re-simulation on truncated data, no fold sees its future."""

from __future__ import annotations

from typing import Any

import _metric_oracle as oracle
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.backtest.engine import ExecutionParams, simulate, strategy_returns
from alphaforge.config import WalkForwardConfig
from alphaforge.enums import WalkForwardMode
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import canonical_json
from alphaforge.validation.synthetic import ohlcv_frame
from alphaforge.validation.walk_forward import (
    WalkForwardResult,
    fold_edges,
    grid_candidates,
    walk_forward,
    walk_forward_spec,
)

EXEC = ExecutionParams(fee_bps=1.0, slippage_bps=0.5, allow_short=True, bars_per_year=252.0)
BPY = 252.0
SMA_GRID = {"fast": [3, 5, 10], "slow": [8, 20, 40, 80]}


def _frame(n: int = 1200, seed: int = 1, phi: float = 0.15) -> pd.DataFrame:
    return ohlcv_frame(n, phi=phi, seed=seed, mu=2e-4, sigma=0.012)


def test_fold_edges_layout() -> None:
    assert fold_edges(100, 4) == [0, 20, 40, 60, 80, 100]
    assert fold_edges(103, 2) == [0, 34, 68, 103]
    with pytest.raises(DataInvalid):
        fold_edges(9, 4)
    with pytest.raises(ConfigInvalid):
        fold_edges(100, 0)


def run_wf(frame: pd.DataFrame, strategy: str, params: dict[str, Any], *, folds: int, mode: str = "fixed",
           grid: dict[str, list[Any]] | None = None) -> WalkForwardResult:
    """:func:`walk_forward` with its typed section (as ``load_config`` would build it) and this module's EXEC."""
    config = WalkForwardConfig(folds, WalkForwardMode(mode), dict(grid or {}))
    return walk_forward(frame, strategy, params, EXEC, config, bars_per_year=BPY)


def test_grid_expansion_skips_invalid_and_duplicate_points() -> None:
    points, skipped = grid_candidates("sma_cross", {"fast": 10, "slow": 50}, SMA_GRID)
    assert skipped == 1  # (fast 10, slow 8): fast >= slow is invalid for sma_cross
    assert all(p["fast"] < p["slow"] for p in points) and len(points) == 11
    assert points[0] == {"fast": 3, "slow": 8}  # keys sorted, values in the given order
    dup, _ = grid_candidates("sma_cross", {}, {"fast": [5, 5], "slow": [20]})
    assert dup == [{"fast": 5, "slow": 20}]
    with pytest.raises(ConfigInvalid):
        grid_candidates("sma_cross", {}, {"fast": [50], "slow": [10]})
    with pytest.raises(ConfigInvalid):
        grid_candidates("sma_cross", {}, {"fast": []})


def test_fixed_mode_folds_are_slices_of_the_full_run() -> None:
    frame = _frame()
    params = {"fast": 5, "slow": 20}
    res = run_wf(frame, "sma_cross", params, folds=4, mode="fixed")
    full = simulate(frame, "sma_cross", params, EXEC)
    edges = fold_edges(len(frame), 4)
    assert [(f.start, f.end) for f in res.folds] == list(zip(edges[1:-1], edges[2:], strict=True))
    stitched = []
    for f in res.folds:
        r = full.returns[f.start : f.end]
        stitched.append(r)
        assert f.params == {"fast": 5, "slow": 20} and f.in_sample_sharpe is None
        assert f.start_ts == frame["ts"].iloc[f.start] and f.end_ts == frame["ts"].iloc[f.end - 1]
        assert f.oos_sharpe == pytest.approx(oracle.sharpe(r, BPY))
        assert f.oos_return == pytest.approx(np.prod(1 + r) - 1)
        wealth = np.concatenate(([1.0], np.cumprod(1 + r)))
        assert f.max_drawdown == pytest.approx(np.max(1 - wealth / np.maximum.accumulate(wealth)))
        ts = full.trades["ts"].to_numpy()
        assert f.n_trades == np.count_nonzero((ts >= f.start_ts) & (ts <= f.end_ts))
    oos = np.concatenate(stitched)
    assert res.oos_sharpe == pytest.approx(oracle.sharpe(oos, BPY))
    assert res.positive_fraction == np.mean([f.oos_return > 0 for f in res.folds])
    assert sum(f.n_trades for f in res.folds) > 0


def _naive_optimize(frame: pd.DataFrame, folds: int, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Reference: re-simulate every grid point on the truncated training data, then on data up to the fold end."""
    points, _ = grid_candidates("sma_cross", {}, grid)
    edges = fold_edges(len(frame), folds)
    out = []
    for j in range(1, folds + 1):
        train = frame.iloc[: edges[j]].reset_index(drop=True)
        scores = [oracle.sharpe(simulate(train, "sma_cross", p, EXEC).returns, BPY) for p in points]
        best = points[int(np.argmax(scores))]
        upto = frame.iloc[: edges[j + 1]].reset_index(drop=True)
        out.append((best, simulate(upto, "sma_cross", best, EXEC).returns[edges[j] :]))
    return out


def test_optimize_matches_naive_resimulation_on_truncated_data() -> None:
    frame = _frame(900, seed=2)
    res = run_wf(frame, "sma_cross", {}, folds=3, mode="optimize", grid=SMA_GRID)
    assert res.grid_points == 11 and res.skipped_points == 1
    naive = _naive_optimize(frame, 3, SMA_GRID)
    for f, (best, r) in zip(res.folds, naive, strict=True):
        assert f.params == best
        assert f.oos_sharpe == pytest.approx(oracle.sharpe(r, BPY), rel=1e-9, abs=1e-12)
        assert f.in_sample_sharpe is not None


@pytest.mark.parametrize(
    ("strategy", "params", "mode", "grid"),
    [
        ("sma_cross", {}, "optimize", SMA_GRID),
        ("momentum", {}, "optimize", {"lookback": [1, 5, 20], "threshold": [0.0, 0.01]}),
        ("breakout", {}, "optimize", {"lookback": [5, 20]}),
        ("zscore_reversion", {}, "fixed", None),
        ("ema_cross", {}, "fixed", None),
    ],
)
def test_no_fold_sees_its_own_future(strategy: str, params: dict[str, Any], mode: str,
                                     grid: dict[str, list[Any]] | None) -> None:
    frame = _frame(1000, seed=3)
    base = run_wf(frame, strategy, params, folds=4, mode=mode, grid=grid)
    rng = np.random.default_rng(0)
    for j, fold in enumerate(base.folds[:-1]):
        changed = frame.copy()
        tail = slice(fold.end, None)
        scale = np.exp(np.cumsum(rng.normal(0.0, 0.05, len(frame) - fold.end)))  # a wild, different future
        for col in ("open", "high", "low", "close"):
            changed.loc[tail, col] = (changed.loc[tail, col].to_numpy() * scale).astype(np.float32)
        other = run_wf(changed, strategy, params, folds=4, mode=mode, grid=grid)
        assert other.folds[: j + 1] == base.folds[: j + 1]  # choice and every result identical
        assert other.folds[-1] != base.folds[-1]  # the change really reached the later folds


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(2, 59), seed=st.integers(0, 50))
def test_strategy_returns_are_causal(cut: int, seed: int) -> None:
    """The property that makes computing once and slicing look-ahead-free: truncation never changes the past."""
    frame = _frame(300, seed=seed)
    m = cut * 5
    for name, p in (("sma_cross", {"fast": 3, "slow": 8}), ("momentum", {"lookback": 3}), ("breakout", {"lookback": 5})):
        full = strategy_returns(frame, name, p, EXEC)
        part = strategy_returns(frame.iloc[:m].reset_index(drop=True), name, p, EXEC)
        np.testing.assert_array_equal(full[:m], part)


def test_optimize_selects_the_best_in_sample_point_and_ties_go_first() -> None:
    frame = _frame(800, seed=4)
    grid: dict[str, list[Any]] = {"lookback": [5, 5, 10], "threshold": [0.0]}  # the duplicate 5 collapses into one point
    res = run_wf(frame, "momentum", {}, folds=2, mode="optimize", grid=grid)
    assert res.grid_points == 2
    for f in res.folds:
        scores = [oracle.sharpe(strategy_returns(frame.iloc[: f.start].reset_index(drop=True), "momentum",
                                                  {"lookback": lb, "threshold": 0.0}, EXEC), BPY) for lb in (5, 10)]
        assert f.params["lookback"] == (5, 10)[int(np.argmax(scores))]
        assert f.in_sample_sharpe == pytest.approx(max(scores))
    # no grid: the configured params are the single candidate
    single = run_wf(frame, "buy_and_hold", {}, folds=2, mode="optimize", grid={})
    assert single.grid_points == 1


def test_errors_and_spec() -> None:
    frame = _frame(100)
    with pytest.raises(DataInvalid):
        run_wf(frame.iloc[:5], "sma_cross", {}, folds=3)
    with pytest.raises(ConfigInvalid):
        run_wf(frame, "sma_cross", {"fast": 60, "slow": 10}, folds=2)
    spec = walk_forward_spec(WalkForwardConfig(3, WalkForwardMode.OPTIMIZE, {"slow": [20, 50], "fast": [5]}))
    assert spec["folds"] == 3 and list(spec["grid"]) == ["fast", "slow"]
    canonical_json(spec)
    res = run_wf(frame, "sma_cross", {"fast": 3, "slow": 8}, folds=2)
    canonical_json(res.to_payload())
