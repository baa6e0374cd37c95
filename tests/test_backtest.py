"""Engine tests: hand-computed fills/costs/borrow, an independent per-bar reference loop, and the invariants
(accounting identity, Σ pnl == realized, no look-ahead, bit-identical reruns) as hypothesis properties."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.backtest import (
    EQUITY_COLUMNS,
    STRATEGIES,
    TRADE_COLUMNS,
    ExecutionParams,
    run_backtest,
    simulate,
    strategy_returns,
)
from alphaforge.backtest.engine import BacktestResult, equity_returns
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import sha256_hex

MIN_NS = 60 * 10**9
DAY_NS = 86_400 * 10**9
T0 = 1_577_836_800 * 10**9
NO_COSTS = {"fee_bps": 0.0, "slippage_bps": 0.0, "borrow_bps_annual": 0.0}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_frame(n: int, seed: int = 0, vol: float = 0.01) -> pd.DataFrame:
    """A normalized OHLCV frame: geometric random walk (np.random.default_rng(seed)), 1-minute bars."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, vol, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, vol, n))
    return pd.DataFrame({
        "ts": T0 + MIN_NS * np.arange(n, dtype=np.int64),
        "open": open_.astype(np.float32), "high": high.astype(np.float32),
        "low": low.astype(np.float32), "close": close.astype(np.float32),
        "volume": rng.integers(1, 1000, n).astype(np.int64),
    })


def price_frame(open_: list[float], close: list[float], step_ns: int = MIN_NS) -> pd.DataFrame:
    n = len(close)
    o, c = np.asarray(open_, np.float32), np.asarray(close, np.float32)
    return pd.DataFrame({"ts": T0 + step_ns * np.arange(n, dtype=np.int64), "open": o,
                         "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c,
                         "volume": np.ones(n, np.int64)})


def random_exposure(n: int, seed: int, levels: tuple[float, ...], p_change: float) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    change = rng.random(n) < p_change
    picks = rng.choice(np.asarray(levels), n)
    idx = np.maximum.accumulate(np.where(change, np.arange(n), 0))
    return picks[idx].astype(np.float32)


def digest(result: BacktestResult) -> str:
    """sha256 of every output column's bytes (strings joined), the returns and the position."""
    parts: list[bytes] = []
    for df in (result.trades, result.equity):
        for col in df.columns:
            arr = df[col].to_numpy()
            parts.append(col.encode() + str(arr.dtype).encode())
            parts.append("\x1f".join(map(str, arr)).encode() if arr.dtype.kind in "OUT" else arr.tobytes())
    parts += [result.returns.tobytes(), result.position.tobytes()]
    return sha256_hex(b"\x1e".join(parts))


def reference_equity(frame: pd.DataFrame, exposure: np.ndarray, ex: ExecutionParams) -> tuple[np.ndarray, ...]:
    """An independent, deliberately naive per-bar loop of the documented rules (equity and units per bar)."""
    o = frame["open"].to_numpy(np.float64)
    c = frame["close"].to_numpy(np.float64)
    e = np.clip(np.nan_to_num(np.asarray(exposure, np.float64)), -1.0 if ex.allow_short else 0.0, 1.0)
    # borrow by calendar time: each bar's close accrues the time since the previous bar, in 365.25-day years
    stamps = pd.to_datetime(frame["ts"].to_numpy(), utc=True)
    years = [0.0] + [(stamps[s] - stamps[s - 1]) / pd.Timedelta(days=365.25) for s in range(1, len(stamps))]
    cash, units, borrow = ex.initial_equity, 0.0, 0.0
    equity, held = np.empty(len(c)), np.empty(len(c))
    for s in range(len(c)):
        if s >= 1 and e[s - 1] != (e[s - 2] if s >= 2 else 0.0):
            target = e[s - 1] * equity[s - 1] / o[s] if equity[s - 1] > 0 else 0.0
            if target != units:
                dq = target - units
                slipped = o[s] * (1 + ex.slippage_bps / 1e4 * np.sign(dq))
                cash -= dq * slipped + abs(dq) * o[s] * ex.fee_bps / 1e4
                units = target
        if units < 0:
            borrow += ex.borrow_bps_annual / 1e4 * years[s] * -units * c[s]
        equity[s] = cash - borrow + units * c[s]
        held[s] = units
    return equity, held


def _check_identity(result: BacktestResult, initial: float) -> None:
    eq = result.equity.astype({c: np.float64 for c in EQUITY_COLUMNS[1:]})
    resid = eq["equity"] - eq["realized_pnl"] - eq["unrealized_pnl"] + eq["cost_drag"] - initial
    scale = eq[["equity", "realized_pnl", "unrealized_pnl", "cost_drag"]].abs().to_numpy().max(axis=1) + initial
    # four float32 roundings of values up to `scale` (2**-24 relative each)
    assert (resid.abs().to_numpy() <= 4 * 2.0**-24 * scale).all(), resid.abs().max()


# ------------------------------------------------------------------------------------------------------------
# hand-computed scenarios


def test_long_round_trip_with_fees_and_slippage() -> None:
    frame = price_frame([100, 101, 103, 102, 104], [100.5, 102, 104, 101, 105])
    ex = ExecutionParams(initial_equity=100_000.0, fee_bps=10.0, slippage_bps=5.0, borrow_bps_annual=0.0, bars_per_year=252.0)
    res = run_backtest(frame, np.array([1, 1, 0, 0, 0], np.float32), ex)
    u = 100_000.0 / 101.0  # exposure 1 × equity at bar 0's close / bar 1's open
    tr = res.trades
    assert list(tr.columns) == list(TRADE_COLUMNS) and len(tr) == 2
    assert tr["ts"].tolist() == [frame["ts"][1], frame["ts"][3]]
    assert tr["side"].tolist() == ["buy", "flat"]
    np.testing.assert_allclose(tr["qty"], [u, -u], rtol=1e-6)
    np.testing.assert_allclose(tr["entry_price"], [101, 101])
    assert math.isnan(tr["exit_price"][0]) and tr["exit_price"][1] == 102
    np.testing.assert_allclose(tr["cost_bps"], [15, 15])
    np.testing.assert_allclose(tr["pnl"], [0.0, u * (102 - 101)], rtol=1e-6)
    np.testing.assert_allclose(tr["position_after"], [u, 0.0], atol=1e-3)
    # cash paid on the buy: u × 101 × (1 + 5 bps) + 10 bps fee on u × 101 = 100_000 × 1.0015
    cash1 = 100_000.0 - 100_000.0 * 1.0015
    cash3 = cash1 + u * 102 * (1 - 0.0005) - u * 102 * 0.001
    expected_equity = [100_000.0, cash1 + u * 102, cash1 + u * 104, cash3, cash3]
    np.testing.assert_allclose(res.equity["equity"], expected_equity, rtol=1e-7)
    np.testing.assert_allclose(res.equity["cost_drag"], [0, 150, 150, 150 + u * 102 * 0.0015,
                                                         150 + u * 102 * 0.0015], rtol=1e-6)
    np.testing.assert_allclose(res.equity["unrealized_pnl"], [0, u * 1, u * 3, 0, 0], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(res.equity["realized_pnl"], [0, 0, 0, u, u], rtol=1e-6)
    np.testing.assert_allclose(res.returns[1:], np.diff(expected_equity) / expected_equity[:-1], rtol=1e-9)
    assert res.returns[0] == 0.0
    np.testing.assert_allclose(res.position, [0, u, u, 0, 0])
    peak = np.maximum.accumulate(expected_equity)
    np.testing.assert_allclose(res.equity["drawdown"], 1 - np.asarray(expected_equity) / peak, atol=1e-7)


def test_short_accrues_borrow_and_allocates_it_to_the_closing_trade() -> None:
    frame = price_frame([100, 100, 90, 80, 85], [100, 95, 85, 82, 85], step_ns=DAY_NS)
    # 100 bps a day of calendar time: 36_525 bps a 365.25-day year (daily bars, whatever bars_per_year says)
    ex = ExecutionParams(fee_bps=0.0, slippage_bps=0.0, borrow_bps_annual=36_525.0, allow_short=True, bars_per_year=252.0)
    res = run_backtest(frame, np.array([-1, -1, 0, 0, 0], np.float32), ex)
    tr = res.trades
    assert tr["side"].tolist() == ["sell", "flat"]
    np.testing.assert_allclose(tr["qty"], [-1000, 1000])
    np.testing.assert_allclose(tr["borrow_cost"], [0, 0.01 * 1000 * (95 + 85)], rtol=1e-6)
    np.testing.assert_allclose(tr["pnl"], [0, 20_000])
    np.testing.assert_allclose(res.equity["cost_drag"], [0, 950, 1800, 1800, 1800], rtol=1e-6)
    np.testing.assert_allclose(res.equity["equity"], [100_000, 104_050, 113_200, 118_200, 118_200], rtol=1e-7)
    np.testing.assert_allclose(res.position, [0, -1000, -1000, 0, 0])


def test_borrow_accrues_calendar_time_so_a_weekend_accrues_three_days() -> None:
    """Daily bars Thu, Fri, Mon, Tue: a short held over the weekend pays Fri→Mon (3 days) at Monday's close."""
    thursday = pd.Timestamp("2024-01-04", tz="UTC")
    days = [thursday + pd.Timedelta(days=k) for k in (0, 1, 4, 5)]
    frame = price_frame([100] * 4, [100] * 4)
    frame["ts"] = np.asarray([d.value for d in days], dtype=np.int64)
    ex = ExecutionParams(fee_bps=0.0, slippage_bps=0.0, borrow_bps_annual=10_000.0, allow_short=True)
    res = run_backtest(frame, np.array([-1, -1, -1, -1], np.float32), ex)
    units = 1000.0  # 100_000 / 100
    per_day = 1.0 / 365.25 * units * 100  # 100 % a year on 100_000 of stock
    # short from Friday's open: Friday's close accrues Thu→Fri (1 day), Monday's Fri→Mon (3), Tuesday's 1
    np.testing.assert_allclose(res.equity["cost_drag"], [0, per_day, 4 * per_day, 5 * per_day], rtol=1e-6)
    # the same position on 24/7 daily bars (Thu..Sun) accrues one day a bar: bars_per_year plays no part
    frame["ts"] = np.asarray([(thursday + pd.Timedelta(days=k)).value for k in range(4)], dtype=np.int64)
    res7 = run_backtest(frame, np.array([-1, -1, -1, -1], np.float32), ex)
    np.testing.assert_allclose(res7.equity["cost_drag"], [0, per_day, 2 * per_day, 3 * per_day], rtol=1e-6)


def test_partial_reduce_increase_and_flip() -> None:
    frame = price_frame([10, 10, 12.5, 20, 10, 10], [10, 10, 20, 20, 10, 10])
    ex = ExecutionParams(allow_short=True, **NO_COSTS, bars_per_year=252.0)
    res = run_backtest(frame, np.array([0.5, 1.0, 0.25, -1, -1, -1], np.float32), ex)
    tr = res.trades
    ts = frame["ts"]
    assert tr["ts"].tolist() == [ts[1], ts[2], ts[3], ts[4], ts[4]]
    assert tr["side"].tolist() == ["buy", "buy", "sell", "flat", "sell"]
    np.testing.assert_allclose(tr["qty"], [5000, 3000, -5843.75, -2156.25, -17250])
    avg = (5000 * 10 + 3000 * 12.5) / 8000  # 10.9375
    np.testing.assert_allclose(tr["entry_price"], [10, 12.5, avg, avg, 10])
    np.testing.assert_array_equal(np.isnan(tr["exit_price"]), [True, True, False, False, True])
    np.testing.assert_allclose(tr["pnl"], [0, 0, 5843.75 * (20 - avg), 2156.25 * (10 - avg), 0])
    np.testing.assert_allclose(tr["position_after"], [5000, 8000, 2156.25, 0, -17250])
    np.testing.assert_allclose(res.equity["equity"], [100_000, 100_000, 172_500, 172_500, 150_937.5, 150_937.5])
    np.testing.assert_allclose(res.equity["realized_pnl"].iloc[-1], 50_937.5)


def test_partial_short_cover_gets_pro_rata_borrow() -> None:
    frame = price_frame([100] * 6, [100] * 6)
    ex = ExecutionParams(fee_bps=0.0, slippage_bps=0.0, borrow_bps_annual=2520.0, allow_short=True, bars_per_year=252.0)
    res = run_backtest(frame, np.array([-1, -1, -0.25, -0.25, 0, 0], np.float32), ex)
    tr, drag = res.trades, res.equity["cost_drag"].to_numpy(np.float64)
    assert tr["side"].tolist() == ["sell", "buy", "flat"]
    # the partial cover (fill at bar 3) closes 75 % of the short: 75 % of the borrow accrued through bar 2
    np.testing.assert_allclose(tr["borrow_cost"][1], drag[2] * (-tr["qty"][1] / tr["qty"][0]), rtol=1e-6)
    np.testing.assert_allclose(tr["borrow_cost"].sum(), drag[-1], rtol=1e-6)


def test_last_decision_never_fills_and_only_changes_trade() -> None:
    frame = make_frame(50, seed=3)
    exposure = np.zeros(50, np.float32)
    exposure[-1] = 1.0
    res = run_backtest(frame, exposure, ExecutionParams(bars_per_year=252.0))
    assert len(res.trades) == 0 and (res.equity["equity"] == 100_000).all() and not res.returns.any()
    exposure[10:] = 1.0  # held target: a single fill, no drift rebalancing
    res = run_backtest(frame, exposure, ExecutionParams(bars_per_year=252.0))
    assert len(res.trades) == 1 and res.trades["ts"][0] == frame["ts"][11]


def test_long_only_clips_shorts_and_nan_is_flat() -> None:
    frame = make_frame(40, seed=4)
    exposure = np.full(40, -1.0, np.float32)
    exposure[5:10] = np.nan
    exposure[20:] = 3.0
    res = run_backtest(frame, exposure, ExecutionParams(allow_short=False, bars_per_year=252.0))
    assert (res.position >= 0).all()
    assert len(res.trades) == 1 and res.trades["side"][0] == "buy" and res.trades["ts"][0] == frame["ts"][21]
    np.testing.assert_allclose(res.trades["qty"][0] * frame["open"][21], res.equity["equity"][20], rtol=1e-6)


def test_bust_account_goes_flat_and_returns_stay_finite() -> None:
    frame = price_frame([100, 100, 300, 300, 300, 300], [100, 100, 300, 300, 300, 300])
    ex = ExecutionParams(allow_short=True, **NO_COSTS, bars_per_year=252.0)
    res = run_backtest(frame, np.array([-1, -1, -0.5, -0.5, -0.5, -0.5], np.float32), ex)
    assert res.equity["equity"][2] < 0  # short 1000 units through a 3x move
    assert res.position[-1] == 0.0 and res.trades["side"].iloc[-1] == "flat"  # target flat once equity <= 0
    assert np.isfinite(res.returns).all() and res.returns[3] == 0.0


def test_output_schema() -> None:
    res = run_backtest(make_frame(30), random_exposure(30, 0, (-1.0, 0.0, 1.0), 0.3),
                       ExecutionParams(allow_short=True, bars_per_year=252.0))
    assert list(res.equity.columns) == list(EQUITY_COLUMNS)
    assert res.equity["ts"].dtype == np.int64 and res.trades["ts"].dtype == np.int64
    assert all(res.equity[c].dtype == np.float32 for c in EQUITY_COLUMNS[1:])
    assert all(res.trades[c].dtype == np.float32 for c in TRADE_COLUMNS[2:])
    assert set(res.trades["side"]) <= {"buy", "sell", "flat"} and len(res.trades) > 0
    assert res.returns.dtype == np.float64 and res.position.dtype == np.float64
    assert len(res.returns) == len(res.position) == 30
    assert isinstance(res.equity.index, pd.RangeIndex)
    empty = run_backtest(make_frame(1), np.ones(1, np.float32), ExecutionParams(bars_per_year=252.0))
    assert list(empty.trades.columns) == list(TRADE_COLUMNS) and len(empty.trades) == 0
    assert all(empty.trades[c].dtype == np.float32 for c in TRADE_COLUMNS[2:])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"initial_equity": 0.0}, "initial_equity"), ({"fee_bps": -1.0}, "fee_bps"),
     ({"slippage_bps": float("nan")}, "slippage_bps"), ({"bars_per_year": 0}, "bars_per_year"),
     ({"allow_short": 1}, "allow_short"), ({"fee_bps": True}, "fee_bps"), ({"borrow_bps_annual": "5"}, "borrow_bps_annual")],
)
def test_execution_params_validated(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigInvalid, match=f"execution.{field}"):
        ExecutionParams(**kwargs)  # type: ignore[arg-type]


def test_execution_params_are_the_config_section_ints_as_floats_bars_per_year_resolved_before_use() -> None:
    ex = ExecutionParams(fee_bps=1, initial_equity=5000)
    assert ex.fee_bps == 1.0 and type(ex.fee_bps) is float and type(ex.initial_equity) is float
    assert ex.bars_per_year is None  # "infer it from the calendar": the pipeline resolves it
    with pytest.raises(ConfigInvalid, match="execution.bars_per_year is not resolved"):
        _ = ex.resolved_bars_per_year
    # the engine itself does not need it: borrow accrues by calendar time
    assert len(run_backtest(make_frame(10), np.ones(10), ex).equity) == 10
    with pytest.raises(ConfigInvalid, match=r"^execution.fee_bps: must be >= 0, got -1$"):
        ExecutionParams(fee_bps=-1)


def test_bad_inputs_raise_data_invalid() -> None:
    frame = make_frame(10)
    with pytest.raises(DataInvalid, match="exposure"):
        run_backtest(frame, np.ones(9), ExecutionParams(bars_per_year=252.0))
    with pytest.raises(DataInvalid, match="close"):
        run_backtest(frame.drop(columns="close"), np.ones(10), ExecutionParams(bars_per_year=252.0))
    bad = frame.copy()
    bad.loc[4, "open"] = np.float32(np.nan)
    with pytest.raises(DataInvalid, match="row 4"):
        run_backtest(bad, np.ones(10), ExecutionParams(bars_per_year=252.0))
    with pytest.raises(DataInvalid, match="no rows"):
        run_backtest(frame.iloc[:0], np.ones(0), ExecutionParams(bars_per_year=252.0))


# ------------------------------------------------------------------------------------------------------------
# properties over random data, exposures and costs


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray, ExecutionParams]:
    n = draw(st.integers(2, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    allow_short = draw(st.booleans())
    levels = draw(st.sampled_from([(0.0, 1.0), (-1.0, 0.0, 1.0), (-1.0, -0.3, 0.0, 0.5, 1.0), (0.2, 0.7)]))
    ex = ExecutionParams(
        initial_equity=draw(st.sampled_from([1_000.0, 100_000.0, 3e7])),
        fee_bps=draw(st.floats(0, 50)), slippage_bps=draw(st.floats(0, 50)),
        borrow_bps_annual=draw(st.floats(0, 5_000)), allow_short=allow_short,
        bars_per_year=draw(st.sampled_from([252.0, 98_280.0])),
    )
    frame = make_frame(n, seed, vol=draw(st.sampled_from([0.002, 0.02, 0.08])))
    return frame, random_exposure(n, seed, levels, draw(st.floats(0.05, 0.9))), ex


@FAST
@given(scenarios())
def test_accounting_identity_holds_every_bar(case: tuple[pd.DataFrame, np.ndarray, ExecutionParams]) -> None:
    frame, exposure, ex = case
    _check_identity(run_backtest(frame, exposure, ex), ex.initial_equity)


@FAST
@given(scenarios())
def test_trade_pnl_sums_to_realized(case: tuple[pd.DataFrame, np.ndarray, ExecutionParams]) -> None:
    frame, exposure, ex = case
    res = run_backtest(frame, exposure, ex)
    pnl = res.trades["pnl"].to_numpy(np.float64)
    realized = float(res.equity["realized_pnl"].iloc[-1])
    assert abs(pnl.sum() - realized) <= 2.0**-23 * (np.abs(pnl).sum() + abs(realized)) + 1e-9
    # rows reconcile: pnl = -qty * (exit - entry) on closing rows, 0 on opening rows
    closing = res.trades["exit_price"].notna().to_numpy()
    t = res.trades.astype({c: np.float64 for c in TRADE_COLUMNS[2:]})
    np.testing.assert_allclose(t["pnl"][closing], -t["qty"][closing] * (t["exit_price"] - t["entry_price"])[closing],
                               rtol=1e-5, atol=1e-6 * ex.initial_equity)
    assert (t["pnl"][~closing] == 0).all() and (t["borrow_cost"] >= 0).all()


@FAST
@given(scenarios())
def test_matches_independent_per_bar_reference(case: tuple[pd.DataFrame, np.ndarray, ExecutionParams]) -> None:
    frame, exposure, ex = case
    res = run_backtest(frame, exposure, ex)
    equity, units = reference_equity(frame, exposure, ex)
    np.testing.assert_allclose(res.equity["equity"], equity.astype(np.float32), rtol=2e-6,
                               atol=1e-6 * ex.initial_equity)
    np.testing.assert_allclose(res.position, units, rtol=1e-9, atol=1e-9)
    positions_after = res.trades.groupby("ts", sort=False)["position_after"].last()
    fill_bars = np.searchsorted(frame["ts"].to_numpy(), positions_after.index.to_numpy())
    np.testing.assert_allclose(positions_after.to_numpy(), units[fill_bars].astype(np.float32), rtol=1e-6)
    assert np.array_equal(np.flatnonzero(np.diff(np.r_[0.0, units]) != 0), fill_bars)


@FAST
@given(scenarios())
def test_bit_identical_reruns_and_fast_path(case: tuple[pd.DataFrame, np.ndarray, ExecutionParams]) -> None:
    frame, exposure, ex = case
    first, second = run_backtest(frame, exposure, ex), run_backtest(frame.copy(), exposure.copy(), ex)
    assert digest(first) == digest(second)
    assert np.array_equal(equity_returns(frame, exposure, ex), first.returns)


def strategy_case(data: st.DataObject) -> tuple[str, dict[str, object]]:
    """A random registered strategy with small windows (so that short frames still trade)."""
    draw = data.draw
    name = draw(st.sampled_from(sorted(STRATEGIES)))
    small: dict[str, dict[str, object]] = {
        "buy_and_hold": {},
        "sma_cross": {"fast": draw(st.integers(1, 4)), "slow": draw(st.integers(5, 12))},
        "ema_cross": {"fast": draw(st.integers(1, 4)), "slow": draw(st.integers(5, 12))},
        "momentum": {"lookback": draw(st.integers(1, 10)), "threshold": draw(st.sampled_from([0.0, 0.01]))},
        "zscore_reversion": {"window": draw(st.integers(2, 10)), "entry": 1.0, "exit": 0.3},
        "breakout": {"lookback": draw(st.integers(1, 10))},
    }
    return name, small[name]


@FAST
@given(st.data())
def test_no_look_ahead_truncation(data: st.DataObject) -> None:
    """Running on bars [0, k) reproduces the full run's trades and equity rows up to bar k-1 exactly."""
    n = data.draw(st.integers(3, 220))
    frame = make_frame(n, data.draw(st.integers(0, 2**32 - 1)), vol=0.02)
    name, params = strategy_case(data)
    ex = ExecutionParams(fee_bps=data.draw(st.floats(0, 20)), borrow_bps_annual=data.draw(st.floats(0, 3000)),
                         allow_short=data.draw(st.booleans()), bars_per_year=252.0)
    full = simulate(frame, name, params, ex)
    # random cut points plus the bars around every position change (where a leak would show first)
    changes = np.flatnonzero(np.diff(np.r_[0.0, full.position]) != 0)
    near = [int(b) + d for b in changes[:6] for d in (-1, 0, 1)]
    ks = {data.draw(st.integers(2, n)) for _ in range(3)} | {k for k in near if 2 <= k <= n}
    for k in sorted(ks):
        cut = simulate(frame.iloc[:k].reset_index(drop=True), name, params, ex)
        last_ts = frame["ts"][k - 1]
        pd.testing.assert_frame_equal(cut.trades,
                                      full.trades[full.trades["ts"] <= last_ts].reset_index(drop=True))
        pd.testing.assert_frame_equal(cut.equity, full.equity.iloc[:k])  # every bar up to k-1, bit for bit
        assert np.array_equal(cut.returns, full.returns[:k]) and np.array_equal(cut.position, full.position[:k])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("allow_short", [False, True])
def test_strategy_returns_equals_simulate_returns(name: str, allow_short: bool) -> None:
    frame = make_frame(3000, seed=11)
    ex = ExecutionParams(allow_short=allow_short, borrow_bps_annual=100.0, bars_per_year=252.0)
    res = simulate(frame, name, {}, ex)
    assert np.array_equal(strategy_returns(frame, name, {}, ex), res.returns)
    _check_identity(res, ex.initial_equity)
    assert name == "buy_and_hold" or len(res.trades) > 2


def test_deterministic_across_processes() -> None:
    """A fresh interpreter (different hash seed) produces the same digest."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_backtest as t;"
        "from alphaforge.backtest import simulate, ExecutionParams;"
        "print(t.digest(simulate(t.make_frame(2000, 5), 'zscore_reversion', {}, ExecutionParams(allow_short=True, bars_per_year=252.0))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    here = digest(simulate(make_frame(2000, 5), "zscore_reversion", {}, ExecutionParams(allow_short=True, bars_per_year=252.0)))
    assert out.stdout.strip() == here
