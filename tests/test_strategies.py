"""Strategy registry tests: parameter resolution, feature requests, and each exposure rule against a naive
loop / pandas reference; causality of every strategy's exposure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_backtest import make_frame, strategy_case

from alphaforge.backtest import (
    STRATEGIES,
    FeatureRequest,
    compute_features,
    get_strategy,
    resolve_params,
    target_exposure,
)
from alphaforge.backtest.strategies import _channel, _hold_last_event
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.features.indicators import ema, get_indicator, sma, zscore

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_registry_has_the_required_strategies() -> None:
    assert {"buy_and_hold", "sma_cross", "ema_cross", "momentum", "zscore_reversion", "breakout"} <= set(STRATEGIES)
    assert dict(get_strategy("sma_cross").defaults) == {"fast": 10, "slow": 50}
    assert dict(get_strategy("ema_cross").defaults) == {"fast": 12, "slow": 26}
    assert dict(get_strategy("momentum").defaults) == {"lookback": 20, "threshold": 0.0}
    assert dict(get_strategy("zscore_reversion").defaults) == {"window": 20, "entry": 2.0, "exit": 0.5}
    assert dict(get_strategy("breakout").defaults) == {"lookback": 20}
    assert dict(get_strategy("buy_and_hold").defaults) == {}


def test_unknown_strategy_names_it_and_lists_known() -> None:
    with pytest.raises(ConfigInvalid) as err:
        get_strategy("moon_shot")
    assert "moon_shot" in str(err.value) and "sma_cross" in str(err.value) and "breakout" in str(err.value)
    assert err.value.error_code == "CONFIG_INVALID"


def test_resolve_fills_defaults_and_normalizes() -> None:
    assert resolve_params("sma_cross", {"fast": 5}) == {"fast": 5, "slow": 50}
    assert resolve_params("sma_cross", {"fast": np.int64(3), "slow": 7}) == {"fast": 3, "slow": 7}
    assert resolve_params("zscore_reversion", {"entry": 3}) == {"window": 20, "entry": 3.0, "exit": 0.5}
    assert resolve_params("buy_and_hold", None) == {}
    assert isinstance(resolve_params("momentum", {"threshold": 0})["threshold"], float)


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("sma_cross", {"fast": 50, "slow": 50}, "fast"),
        ("sma_cross", {"fast": 60}, "fast"),
        ("sma_cross", {"fast": 0, "slow": 5}, "fast"),
        ("sma_cross", {"fast": True}, "fast"),
        ("sma_cross", {"fast": 2.0}, "fast"),
        ("sma_cross", {"speed": 2}, "speed"),
        ("ema_cross", {"slow": "26"}, "slow"),
        ("momentum", {"lookback": 0}, "lookback"),
        ("momentum", {"threshold": -0.1}, "threshold"),
        ("momentum", {"threshold": float("nan")}, "threshold"),
        ("momentum", {"threshold": False}, "threshold"),
        ("zscore_reversion", {"window": 1}, "window"),
        ("zscore_reversion", {"exit": 2.5}, "exit"),
        ("zscore_reversion", {"entry": 0.0, "exit": 0.0}, "entry"),
        ("breakout", {"lookback": -3}, "lookback"),
        ("buy_and_hold", {"x": 1}, "x"),
    ],
)
def test_bad_params_name_the_field(name: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        resolve_params(name, params)
    assert f"strategy.params.{field}" in str(err.value)
    assert err.value.context["field"] == f"strategy.params.{field}"


def test_feature_requests_use_indicator_column_names() -> None:
    reqs = get_strategy("sma_cross").features({"fast": 3, "slow": 8})
    assert reqs == [FeatureRequest("sma", {"window": 3}), FeatureRequest("sma", {"window": 8})]
    frame = make_frame(100)
    for name in STRATEGIES:
        feats = compute_features(name, {}, frame)
        expected = [get_indicator(r.indicator).column_name(r.params) for r in get_strategy(name).features({})]
        assert list(feats) == expected
        assert all(a.dtype == np.float32 and len(a) == 100 for a in feats.values())
    feats = compute_features("ema_cross", {}, frame)
    np.testing.assert_array_equal(feats["ema_12"], ema(frame["close"].to_numpy(), 12))
    np.testing.assert_array_equal(compute_features("zscore_reversion", {}, frame)["zscore_20"],
                                  zscore(frame["close"].to_numpy(), 20))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("allow_short", [False, True])
def test_exposure_shape_range_and_given_features(name: str, allow_short: bool) -> None:
    frame = make_frame(600, seed=2, vol=0.02)
    exp = target_exposure(name, {}, frame, allow_short)
    assert exp.dtype == np.float32 and exp.shape == (600,) and np.isfinite(exp).all()
    assert exp.min() >= (-1.0 if allow_short else 0.0) and exp.max() <= 1.0
    if allow_short and name != "buy_and_hold":
        assert (exp < 0).any() and (exp > 0).any()
    given_feats = compute_features(name, {}, frame)
    np.testing.assert_array_equal(target_exposure(name, {}, frame, allow_short, features=given_feats), exp)


def test_missing_feature_column_is_data_invalid() -> None:
    frame = make_frame(100)
    with pytest.raises(DataInvalid, match="sma_50"):
        target_exposure("sma_cross", {}, frame, False, features={"sma_10": np.zeros(100, np.float32)})
    with pytest.raises(DataInvalid, match="rows"):
        target_exposure("sma_cross", {}, frame, False,
                        features={"sma_10": np.zeros(99, np.float32), "sma_50": np.zeros(99, np.float32)})


def test_sma_cross_against_pandas() -> None:
    frame = make_frame(800, seed=9)
    close = frame["close"].astype(np.float64)
    fast, slow = sma(close.to_numpy(), 5), sma(close.to_numpy(), 20)
    # the kernels agree with pandas; the rule is sign(fast - slow), warm-up flat
    np.testing.assert_allclose(fast, close.rolling(5).mean(), rtol=1e-6)
    expected = np.sign(pd.Series(fast, dtype=np.float64) - pd.Series(slow, dtype=np.float64)).fillna(0.0)
    got = target_exposure("sma_cross", {"fast": 5, "slow": 20}, frame, True)
    np.testing.assert_array_equal(got, expected.to_numpy(np.float32))
    assert (got[:19] == 0).all()
    np.testing.assert_array_equal(target_exposure("sma_cross", {"fast": 5, "slow": 20}, frame, False),
                                  np.maximum(expected.to_numpy(np.float32), 0))


def test_ema_cross_rule_and_warmup() -> None:
    frame = make_frame(400, seed=8)
    c = frame["close"].to_numpy()
    expected = np.sign(ema(c, 4).astype(np.float64) - ema(c, 9).astype(np.float64))
    expected[:8] = 0.0
    np.testing.assert_array_equal(target_exposure("ema_cross", {"fast": 4, "slow": 9}, frame, True),
                                  expected.astype(np.float32))


@pytest.mark.parametrize("threshold", [0.0, 0.02])
def test_momentum_against_pandas(threshold: float) -> None:
    frame = make_frame(500, seed=5, vol=0.02)
    ret = frame["close"].astype(np.float64).pct_change(15)
    expected = np.select([ret > threshold, ret < -threshold], [1.0, -1.0], 0.0)
    got = target_exposure("momentum", {"lookback": 15, "threshold": threshold}, frame, True)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert (got[:15] == 0).all()


def _zscore_loop(z: np.ndarray, entry: float, exit_: float) -> np.ndarray:
    state, out = 0.0, np.empty(len(z))
    for i, v in enumerate(z):
        if np.isnan(v):
            state = 0.0
        elif v > entry:
            state = -1.0
        elif v < -entry:
            state = 1.0
        elif abs(v) < exit_:
            state = 0.0
        out[i] = state
    return out


@FAST
@given(arrays(np.float32, st.integers(0, 120), elements=st.one_of(st.floats(-4, 4, width=32), st.just(np.nan))),
       st.floats(0.5, 3.0), st.floats(0.0, 0.49))
def test_zscore_reversion_matches_state_machine(z: np.ndarray, entry: float, exit_: float) -> None:
    feats = {"zscore_7": z, "close": np.ones(len(z), np.float32)}
    params = {"window": 7, "entry": entry, "exit": exit_}
    expected = _zscore_loop(z.astype(np.float64), entry, exit_)
    strat = get_strategy("zscore_reversion")
    np.testing.assert_array_equal(strat.exposure(feats, params, True), expected.astype(np.float32))
    np.testing.assert_array_equal(strat.exposure(feats, params, False), np.maximum(expected, 0).astype(np.float32))


def _breakout_loop(high: np.ndarray, low: np.ndarray, close: np.ndarray, lb: int) -> np.ndarray:
    state, out = 0.0, np.zeros(len(close))
    for t in range(len(close)):
        if t >= lb:
            if close[t] > high[t - lb:t].max():
                state = 1.0
            elif close[t] < low[t - lb:t].min():
                state = -1.0
        out[t] = state
    return out


@FAST
@given(st.integers(1, 300), st.integers(0, 10_000), st.integers(1, 40))
def test_breakout_matches_loop(n: int, seed: int, lookback: int) -> None:
    frame = make_frame(n, seed, vol=0.03)
    h, lo, c = (frame[k].to_numpy(np.float64) for k in ("high", "low", "close"))
    expected = _breakout_loop(h, lo, c, lookback)
    np.testing.assert_array_equal(target_exposure("breakout", {"lookback": lookback}, frame, True),
                                  expected.astype(np.float32))


@FAST
@given(arrays(np.float64, st.integers(0, 200), elements=st.floats(-1e6, 1e6)), st.integers(1, 64))
def test_channel_is_the_max_of_strictly_earlier_bars(x: np.ndarray, window: int) -> None:
    expected = pd.Series(x).rolling(window).max().shift(1).to_numpy()
    got = _channel(x, window, np.maximum)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[~np.isnan(got)], expected[~np.isnan(expected)])


def test_hold_last_event() -> None:
    ev = np.array([np.nan, 1.0, np.nan, np.nan, 0.0, -1.0, np.nan])
    np.testing.assert_array_equal(_hold_last_event(ev), [0, 1, 1, 1, 0, -1, -1])
    assert len(_hold_last_event(np.array([]))) == 0


@FAST
@given(st.data())
def test_exposure_is_causal(data: st.DataObject) -> None:
    """Exposure computed on bars [0, k) equals the full-data exposure on those bars, for EVERY k."""
    n = data.draw(st.integers(2, 120))
    frame = make_frame(n, data.draw(st.integers(0, 2**32 - 1)), vol=0.02)
    name, params = strategy_case(data)
    short = data.draw(st.booleans())
    full = target_exposure(name, params, frame, short)
    for k in range(1, n + 1):
        np.testing.assert_array_equal(target_exposure(name, params, frame.iloc[:k], short), full[:k])
