"""Indicator kernels: accuracy against pandas / loop references, registry rules, chunk invariance, memory."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.features import indicators as ind
from alphaforge.features.indicators import (
    INDICATORS,
    compute_chunked,
    get_indicator,
    resolve_indicator_params,
)

RTOL = 1e-5


def _ohlc(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    high = close * (1.0 + rng.uniform(0.0, 0.01, n))
    low = close * (1.0 - rng.uniform(0.0, 0.01, n))
    return {"high": high, "low": low, "close": close}


def _close_to(ours: np.ndarray, ref: Any, rtol: float = RTOL, atol: float = 1e-6) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True)


def _rsi_loop(c: np.ndarray, w: int) -> np.ndarray:
    d = np.diff(c)
    g, lo = np.maximum(d, 0), np.maximum(-d, 0)
    out = np.full(c.size, np.nan)
    ag, al = g[:w].mean(), lo[:w].mean()
    out[w] = 100 * ag / (ag + al)
    for t in range(w + 1, c.size):
        ag = (ag * (w - 1) + g[t - 1]) / w
        al = (al * (w - 1) + lo[t - 1]) / w
        out[t] = 100 * ag / (ag + al)
    return out


def _atr_loop(h: np.ndarray, lo: np.ndarray, c: np.ndarray, w: int) -> np.ndarray:
    tr = np.maximum(np.maximum(h[1:] - lo[1:], abs(h[1:] - c[:-1])), abs(lo[1:] - c[:-1]))
    out = np.full(c.size, np.nan)
    a = tr[:w].mean()
    out[w] = a
    for t in range(w + 1, c.size):
        a = (a * (w - 1) + tr[t - 1]) / w
        out[t] = a
    return out


# ---------------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("window", [1, 2, 10, 63, 250])
def test_rolling_kernels_match_pandas(window: int) -> None:
    c = _ohlc(3000)["close"]
    s = pd.Series(c)
    _close_to(ind.sma(c, window), s.rolling(window).mean())
    if window >= 2:
        _close_to(ind.rolling_volatility(c, window), s.pct_change().rolling(window).std())
        _close_to(ind.zscore(c, window), (s - s.rolling(window).mean()) / s.rolling(window).std(), rtol=1e-4)


def test_rolling_kernels_accurate_far_from_zero() -> None:
    # a large offset defeats a naive global cumsum (float error grows with the series); ours stays local
    rng = np.random.default_rng(3)
    x = 1e6 + np.cumsum(rng.normal(0.0, 1.0, 200_000))
    s = pd.Series(x)
    _close_to(ind.sma(x, 20), s.rolling(20).mean())
    _close_to(ind.zscore(x, 20), (s - s.rolling(20).mean()) / s.rolling(20).std(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("span", [1, 2, 20, 200])
def test_ema_matches_pandas_ewm(span: int) -> None:
    c = _ohlc(3000)["close"]
    _close_to(ind.ema(c, span), pd.Series(c).ewm(span=span, adjust=False).mean())


def test_returns_match_references() -> None:
    c = _ohlc(1000)["close"]
    _close_to(ind.returns(c), pd.Series(np.log(c)).diff())
    _close_to(ind.returns(c, "simple"), pd.Series(c).pct_change())


@pytest.mark.parametrize("window", [1, 2, 14, 30])
def test_wilder_rsi_and_atr_match_loops(window: int) -> None:
    a = _ohlc(2000)
    _close_to(ind.rsi(a["close"], window), _rsi_loop(a["close"], window), atol=1e-4)
    _close_to(ind.atr(a["high"], a["low"], a["close"], window), _atr_loop(a["high"], a["low"], a["close"], window))


def test_rsi_extremes() -> None:
    assert np.all(ind.rsi(np.arange(1.0, 40.0), 14)[14:] == 100.0)
    assert np.all(ind.rsi(np.arange(40.0, 1.0, -1.0), 14)[14:] == 0.0)
    assert np.all(ind.rsi(np.full(40, 5.0), 14)[14:] == 50.0)  # flat market: neutral, documented


def test_zscore_constant_window_is_nan() -> None:
    x = np.r_[np.full(10, 3.0), np.arange(5.0)]
    z = ind.zscore(x, 5)
    assert np.isnan(z[:10]).all() and not np.isnan(z[-1])


# ---------------------------------------------------------------------------------------------- shape rules


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_warmup_is_exactly_the_leading_nans(name: str) -> None:
    spec = get_indicator(name)
    out = spec.compute(_ohlc(500))
    assert out.dtype == np.float32 and out.shape == (500,)
    w = spec.warmup()
    assert np.isnan(out[:w]).all()
    assert not np.isnan(out[w:]).any()


@pytest.mark.parametrize("name", sorted(INDICATORS))
@pytest.mark.parametrize("n", [0, 1, 3])
def test_short_series(name: str, n: int) -> None:
    out = get_indicator(name).compute({k: v[:n] for k, v in _ohlc(10).items()}, {})
    assert out.dtype == np.float32 and out.shape == (n,)
    w = get_indicator(name).warmup()
    assert np.isnan(out[: min(n, w)]).all()


def test_input_dtypes_and_frames() -> None:
    a = _ohlc(300)
    c32 = a["close"].astype(np.float32)
    assert np.array_equal(ind.sma(c32, 7), ind.sma(c32.astype(np.float64), 7), equal_nan=True)
    assert np.array_equal(ind.sma(np.arange(50), 5), ind.sma(np.arange(50.0), 5), equal_nan=True)
    frame = pd.DataFrame(a)
    assert np.array_equal(get_indicator("atr").compute(frame), get_indicator("atr").compute(a), equal_nan=True)


def test_nan_semantics() -> None:
    x = np.arange(1.0, 31.0)
    x[15] = np.nan
    s = ind.sma(x, 4)
    assert np.isnan(s[15:19]).all() and not np.isnan(s[19:]).any() and not np.isnan(s[3:15]).any()
    e = ind.ema(x, 5)
    assert not np.isnan(e[:15]).any() and np.isnan(e[15:]).all()  # a recursion never skips data
    lead = np.r_[np.nan, np.nan, x[:10]]
    e2 = ind.ema(lead, 5)
    assert np.isnan(e2[:2]).all() and e2[2] == 1.0  # seeded with the first non-NaN value
    r = ind.rsi(x, 3)
    assert np.isnan(r[15:]).all() and not np.isnan(r[3:15]).any()


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names_versions_columns() -> None:
    assert set(INDICATORS) == {"sma", "ema", "volatility", "returns", "rsi", "zscore", "atr"}
    assert get_indicator("sma").column_name({"window": 10}) == "sma_10"
    assert get_indicator("ema").column_name({"span": 20}) == "ema_20"
    assert get_indicator("returns").column_name() == "returns_log"
    assert get_indicator("atr").column_name() == "atr_14"
    assert get_indicator("atr").inputs == ("high", "low", "close")
    assert all(s.version.count(".") == 2 for s in INDICATORS.values())
    assert get_indicator("volatility").warmup({"window": 20}) == 20
    assert get_indicator("sma").warmup({"window": 20}) == 19
    assert get_indicator("rsi").warmup() == 14


def test_unknown_indicator_lists_known() -> None:
    with pytest.raises(ConfigInvalid) as exc:
        get_indicator("macd")
    assert "macd" in str(exc.value) and "sma" in str(exc.value) and exc.value.error_code == "CONFIG_INVALID"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sma", {"window": 0}),
        ("sma", {"window": True}),
        ("sma", {"window": 2.0}),
        ("sma", {"window": "5"}),
        ("sma", {"span": 5}),
        ("volatility", {"window": 1}),
        ("zscore", {"window": 1}),
        ("ema", {"span": 0}),
        ("returns", {"kind": "pct"}),
        ("rsi", {"window": -3}),
    ],
)
def test_bad_params_rejected(name: str, params: dict[str, object]) -> None:
    with pytest.raises(ConfigInvalid) as exc:
        resolve_indicator_params(name, params)
    assert name in str(exc.value)


def test_params_resolved() -> None:
    assert resolve_indicator_params("rsi", {}) == {"window": 14}
    assert resolve_indicator_params("sma", {"window": np.int64(5)}) == {"window": 5}
    assert type(resolve_indicator_params("sma", {"window": np.int64(5)})["window"]) is int


def test_bad_inputs() -> None:
    with pytest.raises(DataInvalid, match="'high'"):
        get_indicator("atr").compute({"close": np.ones(5), "low": np.ones(5)})
    with pytest.raises(DataInvalid, match="different lengths"):
        get_indicator("atr").compute({"close": np.ones(5), "low": np.ones(5), "high": np.ones(4)})
    with pytest.raises(ConfigInvalid):
        compute_chunked("sma", {"close": np.ones(5)}, {"window": 2}, chunk_size=0)


# ---------------------------------------------------------------------------------------------- chunking


@st.composite
def _chunk_case(draw: st.DrawFn) -> tuple[str, dict[str, object], dict[str, np.ndarray], int]:
    name = draw(st.sampled_from(sorted(INDICATORS)))
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
    close = scale * (50.0 + np.cumsum(rng.normal(0.0, 1.0, n)))
    high = close + np.abs(rng.normal(0.0, scale, n))
    low = close - np.abs(rng.normal(0.0, scale, n))
    if n and draw(st.booleans()):  # a few NaNs anywhere
        for i in draw(st.lists(st.integers(0, n - 1), max_size=3)):
            close[i] = np.nan
    key = next(iter(get_indicator(name).defaults))
    value: object = draw(st.sampled_from(["log", "simple"])) if key == "kind" else draw(
        st.integers(2 if name in ("volatility", "zscore") else 1, 60)
    )
    chunk = draw(st.one_of(st.integers(1, 40), st.integers(41, 400)))
    return name, {key: value}, {"high": high, "low": low, "close": close}, chunk


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_chunk_case())
def test_chunked_is_bitwise_identical(case: tuple[str, dict[str, object], dict[str, np.ndarray], int]) -> None:
    name, params, arrays, chunk = case
    whole = compute_chunked(name, arrays, params, chunk_size=None)  # one chunk
    chunked = compute_chunked(name, arrays, params, chunk_size=chunk)
    assert chunked.dtype == np.float32
    assert np.array_equal(whole, chunked, equal_nan=True)


def test_chunked_bitwise_on_long_series_every_indicator() -> None:
    a = _ohlc(150_000, seed=11)
    for name, spec in INDICATORS.items():
        whole = compute_chunked(name, a, None, None)  # one chunk
        assert np.array_equal(whole, spec.compute(a), equal_nan=True), name  # DEFAULT_CHUNK-bar chunks
        for chunk in (997, 4096, 149_999):
            assert np.array_equal(whole, compute_chunked(name, a, None, chunk), equal_nan=True), (name, chunk)


@pytest.mark.parametrize("name", ["sma", "zscore", "rsi"])
def test_chunked_peak_memory_bounded_by_chunk(name: str) -> None:
    a = {k: v for k, v in _ohlc(400_000, seed=5).items()}
    output_bytes = 400_000 * 4

    def peak(chunk: int | None) -> int:
        tracemalloc.start()
        compute_chunked(name, a, None, chunk)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    contiguous, chunked = peak(None), peak(10_000)
    assert chunked - output_bytes < 50 * 10_000 * 8  # a few float64 chunk-sized temporaries
    # working memory beyond the output (the compiled rolling kernel has no (blocks x window) temporaries, so
    # the whole output no longer dominates the contiguous peak it is compared with)
    assert chunked - output_bytes < (contiguous - output_bytes) / 4
