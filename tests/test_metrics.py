"""Metrics tests: every metric cross-checked against the oracle in ``_metric_oracle`` (each metric computed from
its textbook definition, never by calling :mod:`alphaforge.metrics`), the bars-per-year rule, and the
zero-denominator conventions (no NaN / inf ever)."""

from __future__ import annotations

import math

import _metric_oracle as oracle
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_backtest import make_frame, price_frame, random_exposure

from alphaforge.backtest import ExecutionParams, run_backtest, simulate
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.metrics import (
    CAGR_LOG_CAP,
    METRIC_KEYS,
    PROFIT_FACTOR_CAP,
    cagr,
    cagr_from_log_sum,
    infer_bars_per_year,
    performance_metrics,
    sharpe,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAY = pd.Timedelta(days=1)


def _ts(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (pd.bdate_range("2020-01-01", periods=300), 252.0),                 # weekday daily: the 252 convention
        (pd.date_range("2020-01-01", periods=300, freq="D"), 365.25),       # 7-day daily (crypto): calendar
        (pd.date_range("2020-01-03", periods=200, freq="W-FRI"), 52.0),
        (pd.date_range("2020-01-01", periods=60, freq="MS"), 12.0),
        (pd.date_range("2020-01-31", periods=60, freq="ME"), 12.0),
        (pd.date_range("2020-01-01", periods=40, freq="QS"), 4.0),
        (pd.date_range("1980-01-01", periods=40, freq="YS"), 1.0),
        (pd.date_range("2020-01-01", periods=500, freq="h"), 365.25 * 24),          # 24/7 hourly
        (pd.date_range("2020-01-01", periods=5000, freq="5min"), 365.25 * 24 * 12),  # 24/7 5-minute
        (pd.date_range("2020-01-01", periods=30_000, freq="min"), 365.25 * 24 * 60),  # 24/7 minute
        (pd.date_range("2020-01-01", periods=50, freq="2D"), 365.25 / 2),
    ],
)
def test_infer_bars_per_year(index: pd.DatetimeIndex, expected: float) -> None:
    """Regular calendars: each bar of spacing d covers d of calendar, so B = year / d (or the convention)."""
    assert infer_bars_per_year(_ts(index)) == pytest.approx(expected)


def test_infer_bars_per_year_rejects_degenerate_input() -> None:
    with pytest.raises(ConfigInvalid, match="fewer than 30"):
        infer_bars_per_year(np.array([1], np.int64))
    with pytest.raises(DataInvalid, match="increasing"):
        infer_bars_per_year(np.array([5, 5, 5], np.int64))


@FAST
@given(arrays(np.float64, st.integers(0, 300), elements=st.floats(-0.5, 0.5)), st.sampled_from([12.0, 252.0, 98280.0]))
def test_sharpe_and_cagr_match_the_definitions(r: np.ndarray, bpy: float) -> None:
    assert sharpe(r, bpy) == pytest.approx(oracle.sharpe(r, bpy), rel=1e-9, abs=1e-9)
    assert cagr(r, bpy) == pytest.approx(oracle.cagr(r, bpy), rel=1e-8, abs=1e-12)
    # the sufficient-statistic forms the bootstrap uses give the same numbers
    assert cagr_from_log_sum(float(np.log1p(r).sum()), len(r), bpy) == cagr(r, bpy)
    # the one-pass sums form cancels catastrophically when the spread is tiny next to the mean: compare it only
    # where it is well conditioned (std above a millionth of |mean|)
    if len(r) >= 2 and oracle.sample_std(r) > max(1e-6 * abs(float(r.mean())), 1e-150):
        s1, s2, n = r.sum(), (r * r).sum(), len(r)
        from_sums = (s1 / n) / math.sqrt((s2 - s1 * s1 / n) / (n - 1)) * math.sqrt(bpy)
        assert sharpe(r, bpy) == pytest.approx(from_sums, rel=1e-6, abs=1e-6)


def test_the_oracle_is_the_textbook_on_a_hand_worked_series() -> None:
    """Numbers worked by hand, so that the oracle itself is checked: r = (0.1, -0.05, 0.02, -0.1), B = 4."""
    r = np.array([0.1, -0.05, 0.02, -0.1])
    mean, std = -0.0075, math.sqrt((0.1075**2 + 0.0425**2 + 0.0275**2 + 0.0925**2) / 3)
    assert oracle.sharpe(r, 4) == pytest.approx(mean / std * 2)
    assert oracle.volatility(r, 4) == pytest.approx(std * 2)
    assert oracle.sortino(r, 4) == pytest.approx(mean / math.sqrt((0.05**2 + 0.1**2) / 4) * 2)
    wealth = 1.1 * 0.95 * 1.02 * 0.9
    assert oracle.total_return(r) == pytest.approx(wealth - 1)
    assert oracle.cagr(r, 4) == pytest.approx(wealth - 1)  # 4 bars at 4 bars a year: one year
    assert oracle.max_drawdown(r) == pytest.approx(1 - wealth / 1.1)  # the peak is after the first bar
    assert oracle.calmar(r, 4) == pytest.approx((wealth - 1) / (1 - wealth / 1.1))
    assert oracle.cagr(np.full(8, 0.01), 4) == pytest.approx(1.01**4 - 1)  # two years
    assert oracle.sharpe(np.full(5, 0.01), 252) == 0.0 and oracle.sortino(np.full(5, 0.01), 252) == 0.0
    # the documented caps are the implementation's
    assert (oracle.CAGR_EXPONENT_CAP, oracle.PROFIT_FACTOR_CAP) == (CAGR_LOG_CAP, PROFIT_FACTOR_CAP)


def test_sharpe_zero_std_and_ruin_conventions() -> None:
    assert sharpe(np.full(10, 0.1), 252) == 0.0  # mean rounding would otherwise give ~1e16
    assert sharpe(np.zeros(10), 252) == 0.0 and sharpe(np.array([0.3]), 252) == 0.0
    assert cagr(np.array([0.1, -1.0, 0.2]), 252) == -1.0
    assert math.isfinite(cagr(np.full(5, 0.5), 98280))
    with pytest.raises(DataInvalid, match="non-finite"):
        sharpe(np.array([0.1, np.nan]), 252)


@FAST
@given(st.integers(30, 400), st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([252.0, 98280.0]))
def test_performance_metrics_match_the_definitions(n: int, seed: int, allow_short: bool, bpy: float) -> None:
    frame = make_frame(n, seed, vol=0.02)
    ex = ExecutionParams(allow_short=allow_short, fee_bps=5.0, borrow_bps_annual=300.0, bars_per_year=bpy)
    result = run_backtest(frame, random_exposure(n, seed, (-1.0, 0.0, 0.5, 1.0), 0.2), ex)
    got = performance_metrics(result, bpy)
    expected = oracle.performance(result, bpy)
    assert tuple(got) == METRIC_KEYS
    assert isinstance(got["n_trades"], int) and got["n_trades"] == expected["n_trades"]
    for key in METRIC_KEYS:
        assert math.isfinite(got[key]), key
        # profit_factor: the oracle takes entry costs fill by fill from the float32 opening rows, the metric from
        # the closing row's float32 average entry_price: the same sum rounded two ways (~1e-8 relative)
        rel = 1e-6 if key == "profit_factor" else 1e-9
        assert got[key] == pytest.approx(expected[key], rel=rel, abs=1e-12), key
    # the stored equity column (float32) tells the same story as the returns
    equity = result.equity["equity"].to_numpy(np.float64)
    assert got["total_return"] == pytest.approx(equity[-1] / ex.initial_equity - 1, rel=1e-5, abs=1e-6)


def test_conventions_without_trades_or_losses() -> None:
    flat = run_backtest(make_frame(50), np.zeros(50, np.float32), ExecutionParams(bars_per_year=252.0))
    m = performance_metrics(flat, 252.0)
    assert m == {k: (0 if k == "n_trades" else 0.0) for k in METRIC_KEYS}
    # one winning round trip, no losing one: profit_factor is the documented cap
    frame = price_frame([100, 100, 110, 120, 120], [100, 105, 115, 120, 120])
    win = run_backtest(frame, np.array([1, 1, 0, 0, 0], np.float32), ExecutionParams(bars_per_year=252.0))
    m = performance_metrics(win, 252.0)
    assert m["profit_factor"] == PROFIT_FACTOR_CAP and m["win_rate"] == 1.0 and m["n_trades"] == 2
    assert m["max_drawdown"] == 0.0 and m["calmar"] == 0.0 and m["sortino"] == 0.0
    assert m["exposure"] == pytest.approx(2 / 5)


def test_round_trip_is_net_of_both_fills() -> None:
    """Worked by hand: 1000 units bought at 100 and sold at 100.125, 10 bps a fill (fee 6 + slippage 4).

    Price pnl 125; exit costs 1000 * 100.125 * 0.001 = 100.125; entry costs 1000 * 100 * 0.001 = 100. Net of
    the exit only (the old, half-net convention) it is a +24.875 win; net of the round trip a -75.125 loss.
    """
    frame = price_frame([100, 100, 100.125, 100.125], [100, 100, 100.125, 100.125])
    ex = ExecutionParams(initial_equity=100_000.0, fee_bps=6.0, slippage_bps=4.0,
                         borrow_bps_annual=0.0, bars_per_year=252.0)
    result = run_backtest(frame, np.array([1, 0, 0, 0], np.float32), ex)
    trades = result.trades
    assert trades["qty"].tolist() == pytest.approx([1000.0, -1000.0])
    assert trades["pnl"].iloc[1] == pytest.approx(125.0, rel=1e-6)  # the row's pnl keeps its meaning: gross
    m = performance_metrics(result, 252.0)
    assert m["win_rate"] == 0.0 and m["profit_factor"] == 0.0  # one losing round trip of -75.125
    # a second trip that wins net of both fills: 1000 units at 100, out at 101 → 1000 - 201 = +799
    frame2 = price_frame([100, 100, 101, 101], [100, 100, 101, 101])
    win = performance_metrics(run_backtest(frame2, np.array([1, 0, 0, 0], np.float32), ex), 252.0)
    assert win["win_rate"] == 1.0 and win["profit_factor"] == PROFIT_FACTOR_CAP


def test_buy_and_hold_metrics_track_the_price() -> None:
    frame = make_frame(1000, seed=21)
    res = simulate(frame, "buy_and_hold", {}, ExecutionParams(fee_bps=0.0, slippage_bps=0.0, bars_per_year=252.0))
    m = performance_metrics(res, 252.0)
    close = frame["close"].astype(np.float64)
    assert m["total_return"] == pytest.approx(close.iloc[-1] / frame["open"].astype(np.float64)[1] - 1, rel=1e-6)
    assert m["exposure"] == pytest.approx(999 / 1000) and m["n_trades"] == 1
