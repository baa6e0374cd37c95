"""The compiled signal rules (alphaforge/backtest/_signals.c) against the numpy rules, bit for bit.

``Strategy.exposure`` runs the compiled rule of sma_cross, ema_cross, momentum, zscore_reversion and breakout when the
kernel is built; its float32 exposure must equal the numpy rule's (signal, NaN -> 0, clip, float32) for any
features and prices — NaN warm-ups and holes, ties, infinities, long-only and long/short. And the permutation
null distribution of every built-in strategy must be the one computed with every kernel disabled.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.backtest import engine
from alphaforge.backtest import strategies as smod
from alphaforge.backtest.engine import ExecutionParams
from alphaforge.features import chunked
from alphaforge.validation import permutation as pmod
from alphaforge.validation.permutation import permutation_test
from alphaforge.validation.synthetic import ohlcv_frame


@pytest.fixture(scope="module")
def kernel() -> None:
    if smod._signals is None:
        assert os.environ.get("CI") != "true"
        pytest.skip("the compiled kernel is not built; tests/test_ledger_kernel.py says why")


def both(name: str, features: dict[str, np.ndarray], params: dict[str, Any],
         allow_short: bool) -> tuple[np.ndarray, np.ndarray]:
    strategy = smod.get_strategy(name)
    compiled = strategy.exposure(features, params, allow_short)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(smod, "_signals", None)
        reference = strategy.exposure(features, params, allow_short)
    assert compiled.dtype == reference.dtype == np.float32
    return compiled, reference


def assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


feature = st.floats(-5.0, 5.0, allow_nan=False, width=32) | st.sampled_from(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 2.0, -2.0, 0.5, -0.5, 1.0])
price = st.floats(0.5, 2.0, allow_nan=False) | st.sampled_from([1.0, 1.5, np.nan, np.inf])


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["sma_cross", "ema_cross"]), fast=st.integers(1, 6), gap=st.integers(1, 30),
       allow_short=st.booleans(), data=st.data())
def test_cross_rules_are_the_numpy_rule_bit_for_bit(kernel: None, name: str, fast: int, gap: int,
                                                     allow_short: bool, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 60))
    key = "sma" if name == "sma_cross" else "ema"
    a = np.asarray(data.draw(st.lists(feature, min_size=n, max_size=n)), dtype=np.float32)
    b = np.where(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), a,
                 np.asarray(data.draw(st.lists(feature, min_size=n, max_size=n)), dtype=np.float32))
    features = {f"{key}_{fast}": a, f"{key}_{fast + gap}": b.astype(np.float32)}
    assert_bits(*both(name, features, {"fast": fast, "slow": fast + gap}, allow_short))


@settings(max_examples=300, deadline=None)
@given(window=st.integers(2, 30), entry=st.sampled_from([0.5, 1.0, 2.0, 2.5]), ratio=st.sampled_from([0.0, 0.25, 0.5]),
       allow_short=st.booleans(), z=st.lists(feature, max_size=80))
def test_zscore_rule_is_the_numpy_rule_bit_for_bit(kernel: None, window: int, entry: float, ratio: float,
                                                    allow_short: bool, z: list[float]) -> None:
    features = {f"zscore_{window}": np.asarray(z, dtype=np.float32)}
    params = {"window": window, "entry": entry, "exit": entry * ratio}
    assert_bits(*both("zscore_reversion", features, params, allow_short))


@settings(max_examples=300, deadline=None)
@given(lookback=st.integers(1, 25), allow_short=st.booleans(), data=st.data())
def test_breakout_rule_is_the_numpy_rule_bit_for_bit(kernel: None, lookback: int, allow_short: bool,
                                                      data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 90))
    cols = {c: np.asarray(data.draw(st.lists(price, min_size=n, max_size=n)), dtype=np.float64)
            for c in ("high", "low", "close")}
    narrow = data.draw(st.sampled_from([(), ("high", "low", "close"), ("high", "low"), ("high",)]))  # float32 ones
    cols.update({c: cols[c].astype(np.float32) for c in narrow})
    assert_bits(*both("breakout", cols, {"lookback": lookback}, allow_short))


@settings(max_examples=300, deadline=None)
@given(lookback=st.integers(1, 25), threshold=st.sampled_from([0.0, 0.01, 0.3]), allow_short=st.booleans(),
       data=st.data())
def test_momentum_rule_is_the_numpy_rule_bit_for_bit(kernel: None, lookback: int, threshold: float,
                                                      allow_short: bool, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 90))
    close = np.asarray(data.draw(st.lists(price | st.sampled_from([0.0, -1.0]), min_size=n, max_size=n)))
    if data.draw(st.booleans()):
        close = close.astype(np.float32)  # the permutation's rebuilt prices (widened exactly)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert_bits(*both("momentum", {"close": close}, {"lookback": lookback, "threshold": threshold},
                          allow_short))


def test_float64_features_take_the_numpy_rule(kernel: None) -> None:
    """The kernel reads float32 features; float64 ones (values a float32 cannot hold) keep the numpy rule."""
    a = np.array([1.0, 1.0 + 1e-12, 1.0])
    b = np.array([1.0 + 1e-12, 1.0, 1.0])
    got = smod.get_strategy("sma_cross").exposure({"sma_1": a, "sma_2": b}, {"fast": 1, "slow": 2}, True)
    np.testing.assert_array_equal(got, np.array([-1.0, 1.0, 0.0], dtype=np.float32))


def test_kernel_checks_its_arguments(kernel: None) -> None:
    assert smod._signals is not None
    f32, out = np.zeros(3, np.float32), np.empty(3, np.float32)
    with pytest.raises(TypeError):
        smod._signals.cross(np.zeros(3), f32, 0, -1.0, out)
    with pytest.raises(ValueError):
        smod._signals.cross(f32, np.zeros(2, np.float32), 0, -1.0, out)
    with pytest.raises(TypeError):
        smod._signals.zscore_hold(f32, 2.0, 0.5, -1.0, np.empty(3))
    with pytest.raises(ValueError):
        smod._signals.breakout(np.zeros(3), np.zeros(3), np.zeros(3), 0, -1.0, out)
    with pytest.raises(ValueError):
        smod._signals.breakout(np.zeros(2), np.zeros(3), np.zeros(3), 2, -1.0, out)


EXEC = ExecutionParams(fee_bps=1.0, slippage_bps=0.5, allow_short=True, bars_per_year=252.0)
LONG_ONLY = ExecutionParams(fee_bps=1.0, slippage_bps=0.5, allow_short=False, bars_per_year=252.0)


@pytest.mark.parametrize("execution", [EXEC, LONG_ONLY], ids=["long_short", "long_only"])
@pytest.mark.parametrize("strategy", sorted(smod.STRATEGIES))
def test_null_digests_equal_those_with_every_kernel_disabled(strategy: str, execution: ExecutionParams) -> None:
    """The permutation test of every built-in strategy gives the same null (digest, p-value, moments) with the
    compiled kernels as with all of them disabled (the numpy / Python references)."""
    frame = ohlcv_frame(3_000, phi=0.05, seed=11, mu=1e-4)

    def run() -> Any:
        return permutation_test(frame, strategy, {}, execution, n=6, seed=9, workers=1)

    compiled = run()
    with pytest.MonkeyPatch.context() as m:
        for module, name in ((engine, "_ledger"), (pmod, "_permute"), (chunked, "_rolling"), (smod, "_signals")):
            m.setattr(module, name, None)
        reference = run()
    assert compiled == reference


close_value = st.floats(0.5, 2.0, allow_nan=False) | st.sampled_from([1.0, 1.0 + 2**-40, 100.0, 0.0, -0.0, np.nan,
                                                                      np.inf, 1e305])


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["sma_cross", "ema_cross"]), fast=st.integers(1, 8), gap=st.integers(1, 30),
       allow_short=st.booleans(), data=st.data())
def test_cross_from_prices_is_the_indicators_then_the_rule_bit_for_bit(
        kernel: None, name: str, fast: int, gap: int, allow_short: bool, data: st.DataObject) -> None:
    """``PreparedStrategy.exposure`` of sma_cross / ema_cross computes both indicators and the rule in one
    compiled pass: the same float32 exposure as the chunked indicators then the numpy rule, for any closes
    (NaN, infinities, zeros, runs of equal values; ema falls back to numpy on NaN / inf)."""
    n = data.draw(st.integers(0, 90))
    closes = data.draw(st.lists(close_value, min_size=n, max_size=n))
    with np.errstate(over="ignore"):  # 1e305 -> inf in float32
        close = np.asarray(closes, dtype=np.float32).astype(np.float64)  # prices come widened from float32
    prepared = smod.prepare_strategy(name, {"fast": fast, "slow": fast + gap})
    if data.draw(st.booleans()):  # the permutation hands the float32 values themselves
        close = close.astype(np.float32)
    prices = {"open": close, "close": close}
    compiled = prepared.exposure(prices, allow_short)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(smod, "_signals", None)  # the indicators' own kernels stay (tests/test_rolling_kernel.py)
        reference = prepared.exposure(prices, allow_short)
    assert_bits(compiled, reference)


def test_cross_from_prices_spans_many_blocks_and_chunks(kernel: None) -> None:
    """Long series: the chunked indicators (64k-bar chunks, absolute blocks) against the one-pass kernel."""
    rng = np.random.default_rng(3)
    close = np.exp(np.cumsum(rng.normal(0.0, 0.01, 200_003))).astype(np.float32).astype(np.float64)
    for name, params in (("sma_cross", {"fast": 7, "slow": 50}), ("ema_cross", {"fast": 3, "slow": 26})):
        prepared = smod.prepare_strategy(name, params)
        compiled = prepared.exposure({"open": close, "close": close}, True)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(smod, "_signals", None)
            reference = prepared.exposure({"open": close, "close": close}, True)
        assert_bits(compiled, reference)
        assert np.count_nonzero(np.diff(compiled)) > 1000  # the rule really flips along the series


@pytest.mark.parametrize("lookback", [1, 7, 20, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nan_at", [None, 15_000])
def test_breakout_rule_over_many_blocks(kernel: None, lookback: int, dtype: type, nan_at: int | None) -> None:
    """A long series (several of the kernel's 4096-bar blocks): the block-wise channel, and with a NaN late in
    the series the NaN-aware pass redoing every bar, both equal to the numpy rule."""
    rng = np.random.default_rng(lookback)
    close = np.exp(np.cumsum(rng.normal(0.0, 0.01, 20_000)))
    cols = {"close": close, "high": close * np.exp(np.abs(rng.normal(0.0, 0.004, close.size))),
            "low": close * np.exp(-np.abs(rng.normal(0.0, 0.004, close.size)))}
    if nan_at is not None:
        cols["high"][nan_at] = np.nan
    cols = {c: a.astype(dtype) for c, a in cols.items()}
    compiled, reference = both("breakout", cols, {"lookback": lookback}, True)
    assert_bits(compiled, reference)
    assert np.count_nonzero(np.diff(compiled)) > 50
