"""The compiled ledger kernel (alphaforge/backtest/_ledger.c) against its pure-Python reference, bit for bit.

The C loop must do exactly the IEEE double operations of :func:`alphaforge.backtest.engine._run_ledger`, in the
same order; these properties compare every segment column, every trade row and the fused returns pass by
their bit patterns (``-0.0`` vs ``0.0`` and NaN payloads included) on random exposures and prices: longs,
shorts, flips, partial reduces, borrow over uneven calendars, fees that wipe the account out and shorts that
ruin it (equity <= 0, the engine then targets flat).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.backtest import engine
from alphaforge.backtest.calendar import year_fractions
from alphaforge.backtest.engine import ExecutionParams, _Ledger

IN_CI = os.environ.get("CI") == "true"
KERNEL = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAY_NS = 86_400 * 10**9
LEVELS = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.25, -0.75, 1e-300, -1e-300, 0.999999999, 1.0 / 3.0)


SETUP = Path(__file__).resolve().parent.parent / "setup.py"
#: every compiled module setup.py builds (its KERNELS list)
KERNEL_MODULES = re.findall(r'^    \("(alphaforge\.[\w.]+)", \[', SETUP.read_text(encoding="utf-8"), re.M)


def test_setup_lists_the_kernels() -> None:
    assert KERNEL_MODULES == list(USERS)


#: each compiled module and the module that uses it (falling back to its Python reference when it is missing)
#: (the user, the attribute holding the compiled module: None when it falls back)
USERS = {"alphaforge.backtest._ledger": ("alphaforge.backtest.engine", "_ledger"),
         "alphaforge.validation._permute": ("alphaforge.validation.permutation", "_permute"),
         "alphaforge.features._rolling": ("alphaforge.features.chunked", "_rolling"),
         "alphaforge.validation._resample": ("alphaforge.validation.resample", "_KERNEL"),
         "alphaforge.backtest._signals": ("alphaforge.backtest.strategies", "_signals"),
         "alphaforge.metrics._moments": ("alphaforge.metrics", "_moments")}


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_the_compiled_kernels_are_built(module: str) -> None:
    """CI must run the compiled kernels: a build that silently fell back to Python fails here."""
    try:
        compiled = importlib.import_module(module)
    except ImportError:
        assert not IN_CI, f"{module} is not importable: the C extension was not built"
        pytest.skip(f"{module} was not built here (no compiler); its Python reference runs")
    assert compiled.__file__ is not None and not compiled.__file__.endswith(".py")
    user, attribute = USERS[module]
    assert getattr(importlib.import_module(user), attribute) is compiled  # and is used


@pytest.fixture(scope="module")
def kernel() -> None:
    if engine._ledger is None:
        assert not IN_CI
        pytest.skip("the compiled kernel is not built; test_the_compiled_kernels_are_built says why")


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


@st.composite
def markets(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """``(ts, open, close, exposure)``: prices with jumps (x0.2 .. x5 a bar), gaps of 1 minute to 3 days."""
    n = draw(st.integers(1, 60))
    ratio = st.floats(0.2, 5.0, allow_nan=False) | st.sampled_from([1.0, 0.999, 1.001])
    close = [draw(st.floats(0.01, 1000.0))]
    for _ in range(n - 1):
        close.append(close[-1] * draw(ratio))
    open_ = [c * draw(st.floats(0.5, 2.0)) for c in close]
    gaps = draw(st.lists(st.sampled_from([60 * 10**9, DAY_NS, 3 * DAY_NS, 7]), min_size=n, max_size=n))
    ts = 1_600_000_000 * 10**9 + np.cumsum(np.asarray(gaps, dtype=np.int64))
    level = st.sampled_from(LEVELS) | st.floats(-1.0, 1.0, allow_nan=False)
    exposure: list[float] = []
    while len(exposure) < n:  # runs of one level: most bars keep the target, as strategies do
        exposure += [draw(level)] * draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float64, np.float32]))  # float32: the registry's exposures
    return (ts, np.asarray(open_, np.float64), np.asarray(close, np.float64),
            np.asarray(exposure[:n], dtype).astype(np.float64))


executions = st.builds(
    ExecutionParams,
    initial_equity=st.sampled_from([100_000.0, 1.0, 1e-3, 7_777.77]),
    fee_bps=st.sampled_from([0.0, 1.0, 2.5, 500.0, 10_000.0, 25_000.0]),
    slippage_bps=st.sampled_from([0.0, 0.5, 3.0, 10_000.0]),
    borrow_bps_annual=st.sampled_from([0.0, 25.0, 1e4, 1e7]),
    allow_short=st.just(True),
)


def assert_same_ledger(a: _Ledger, b: _Ledger) -> None:
    np.testing.assert_array_equal(a.fill_bars, b.fill_bars)
    for name in ("units", "cash", "borrow_base", "close_base", "short_rate", "avg_entry", "realized", "costs",
                 "rows"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        np.testing.assert_array_equal(bits(x), bits(y), err_msg=name)


@KERNEL
@given(markets(), executions)
def test_compiled_ledger_is_the_python_ledger_bit_for_bit(kernel: None, market: tuple[np.ndarray, ...],
                                                          execution: ExecutionParams) -> None:
    ts, open_, close, exposure = market
    cum_close = np.cumsum(close * year_fractions(ts))
    reference = engine._run_ledger(open_, cum_close, close, exposure, execution)
    compiled = engine._compiled_ledger(open_, cum_close, close, exposure, execution)
    assert_same_ledger(reference, compiled)
    without_rows = engine._compiled_ledger(open_, cum_close, close, exposure, execution, want_rows=False)
    assert without_rows.rows.shape == (0, 8)
    assert_same_ledger(reference, _Ledger.of(np.column_stack([np.r_[0, without_rows.fill_bars], *(
        getattr(without_rows, k) for k in ("units", "cash", "borrow_base", "close_base", "short_rate",
                                           "avg_entry", "realized", "costs"))]), reference.rows))


@KERNEL
@given(markets(), executions)
def test_fused_returns_are_the_python_returns_bit_for_bit(kernel: None, market: tuple[np.ndarray, ...],
                                                          execution: ExecutionParams) -> None:
    ts, open_, close, exposure = market
    python = _python_returns(ts, open_, close, exposure, execution)
    fused = engine._fused_returns(ts, open_, close, exposure, execution)
    np.testing.assert_array_equal(bits(python), bits(fused))
    cached = engine._fused_returns(ts, open_, close, exposure, execution, year_fractions(ts))
    np.testing.assert_array_equal(bits(python), bits(cached))


@KERNEL
@given(markets(), executions, st.booleans(), st.booleans())
def test_trusted_returns_of_a_float32_exposure_are_the_python_returns_bit_for_bit(
        kernel: None, market: tuple[np.ndarray, ...], execution: ExecutionParams, allow_short: bool,
        float32_prices: bool) -> None:
    """The permutation path hands the registry's float32 exposure (and the rebuilt float32 prices) to the
    kernel, which widens them and clips the exposure (np.clip to [lo, 1]: the identity on a registry
    exposure); the same returns as the Python ledger on the widened prices and the numpy-clipped float64
    exposure, and as the kernel on those float64 arrays."""
    ts, open_, close, exposure = market
    execution = dataclasses.replace(execution, allow_short=allow_short)
    if float32_prices:
        open32, close32 = open_.astype(np.float32), close.astype(np.float32)
        open_, close = open32.astype(np.float64), close32.astype(np.float64)
        np.testing.assert_array_equal(
            bits(engine.trusted_returns(ts, open32, close32, exposure.astype(np.float32), execution)),
            bits(engine.trusted_returns(ts, open_, close, exposure.astype(np.float32), execution)))
    exposure32 = exposure.astype(np.float32)
    clipped = np.clip(exposure32.astype(np.float64), -1.0 if allow_short else 0.0, 1.0)
    python = _python_returns(ts, open_, close, clipped, execution)
    np.testing.assert_array_equal(bits(python), bits(engine.trusted_returns(ts, open_, close, exposure32, execution)))
    np.testing.assert_array_equal(bits(python), bits(engine.trusted_returns(ts, open_, close, clipped, execution)))


def _python_returns(ts: np.ndarray, open_: np.ndarray, close: np.ndarray, exposure: np.ndarray,
                    execution: ExecutionParams) -> np.ndarray:
    cum_close = np.cumsum(close * year_fractions(ts))
    ledger = engine._run_ledger(open_, cum_close, close, exposure, execution)
    return engine._returns_of(close, cum_close, engine._segments(len(close), ledger.fill_bars), ledger)


def test_a_ruined_short_goes_flat_and_stays_flat(kernel: None) -> None:
    """A short ruined by a squeeze (equity < 0 with borrow accrued): every later target is flat, in both."""
    ts = 1_600_000_000 * 10**9 + DAY_NS * np.arange(6, dtype=np.int64)
    close = np.array([10.0, 10.0, 50.0, 60.0, 70.0, 80.0])
    open_ = close.copy()
    exposure = np.array([-1.0, -1.0, -1.0, 1.0, -0.5, 0.0])
    ex = ExecutionParams(initial_equity=100.0, fee_bps=10.0, slippage_bps=5.0, borrow_bps_annual=1e4,
                         allow_short=True)
    cum_close = np.cumsum(close * year_fractions(ts))
    reference = engine._run_ledger(open_, cum_close, close, exposure, ex)
    assert_same_ledger(reference, engine._compiled_ledger(open_, cum_close, close, exposure, ex))
    seg = engine._segments(len(close), reference.fill_bars)
    equity, borrow = engine._equity_and_borrow(reference, seg, close, cum_close)
    assert equity.min() <= 0.0 and borrow.max() > 0.0  # ruined by the short squeeze, with borrow accrued
    assert list(reference.units) == [0.0, -10.0, 0.0]  # closed at bar 4; the later targets are all flat


def test_run_backtest_is_the_same_with_the_python_ledger(kernel: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatch: run_backtest / equity_returns give identical frames with the kernel and without it."""
    rng = np.random.default_rng(4)
    n = 3_000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    frame = pd.DataFrame({"ts": 1_600_000_000 * 10**9 + 3_600 * 10**9 * np.arange(n, dtype=np.int64),
                          "open": (close * np.exp(rng.normal(0, 0.005, n))).astype(np.float32),
                          "close": close.astype(np.float32)})
    exposure = np.repeat(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], n // 10), 10)
    ex = ExecutionParams(allow_short=True, borrow_bps_annual=300.0)
    compiled = engine.run_backtest(frame, exposure, ex), engine.equity_returns(frame, exposure, ex)
    monkeypatch.setattr(engine, "_ledger", None)
    python = engine.run_backtest(frame, exposure, ex), engine.equity_returns(frame, exposure, ex)
    assert len(python[0].trades) > 100
    pd.testing.assert_frame_equal(compiled[0].trades, python[0].trades)
    pd.testing.assert_frame_equal(compiled[0].equity, python[0].equity)
    for a, b in ((compiled[0].returns, python[0].returns), (compiled[0].position, python[0].position),
                 (compiled[1], python[1]), (compiled[1], python[0].returns)):
        np.testing.assert_array_equal(bits(a), bits(b))


def test_kernel_rejects_wrong_buffers(kernel: None) -> None:
    assert engine._ledger is not None
    x = np.ones(4)
    with pytest.raises(TypeError, match="float64"):
        engine._ledger.ledger(x.astype(np.float32), x, x, x, 1.0, 0.0, 0.0, True)
    with pytest.raises(ValueError, match="expected 4"):
        engine._ledger.returns(x, x, x, np.ones(3), np.empty(4), 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="length"):
        engine._ledger.returns(x, x, x, np.ones(3, np.float32), np.empty(4), 1.0, 0.0, 0.0)
    with pytest.raises(TypeError, match="float64"):
        engine._ledger.returns(x, x, x, np.ones(4, np.float16), np.empty(4), 1.0, 0.0, 0.0)
    read_only = np.ones(4)
    read_only.flags.writeable = False
    for out in (np.ones(4)[::-1], read_only):
        with pytest.raises((TypeError, ValueError, BufferError)):
            engine._ledger.returns(x, x, x, x, out, 1.0, 0.0, 0.0)
