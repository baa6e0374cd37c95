"""The compiled feature kernels (alphaforge/features/_rolling.c) against their references, bit for bit.

``window_moments`` defines every window sum of the sma / zscore / volatility indicators (block prefix sums plus
the previous block's suffix sums, numpy's sequential cumsum); the kernel must reproduce ``s1``, ``s2`` and the
deviations bit for bit for any slice, window, origin (chunk offset) and NaN pattern. ``_ewm`` (ema, rsi, atr)
is defined by pandas' ``ewm(alpha, adjust=False).mean()``; the kernel must give pandas' values bit for bit.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.features import chunked


@pytest.fixture(scope="module")
def kernel() -> None:
    if chunked._rolling is None:
        assert os.environ.get("CI") != "true"
        pytest.skip("the compiled kernel is not built; tests/test_ledger_kernel.py says why")


def bits(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else a.view(np.int64)


values = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-300, 100.0, 100.0 + 1e-12, np.nan])


@settings(max_examples=400, deadline=None)
@given(x=st.lists(values, min_size=1, max_size=120), window=st.integers(1, 25), origin=st.integers(0, 10_000),
       second=st.booleans(), want_dev=st.booleans())
def test_kernel_is_the_numpy_window_moments_bit_for_bit(kernel: None, x: list[float], window: int, origin: int,
                                                         second: bool, want_dev: bool) -> None:
    arr = np.asarray(x, dtype=np.float64)
    compiled = chunked.window_moments(arr, window, origin, second, want_dev)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(chunked, "_rolling", None)
        reference = chunked.window_moments(arr, window, origin, second, want_dev)
    for got, want in zip(compiled, reference, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            assert got is not None
            np.testing.assert_array_equal(bits(got), bits(want))


@settings(max_examples=400, deadline=None)
@given(x=st.lists(values, min_size=0, max_size=120), span=st.sampled_from([1, 2, 3, 5, 12, 26, 200]),
       alpha=st.none() | st.floats(0.01, 1.0), scale=st.sampled_from([1.0, 1e-3, 1e6]))
def test_kernel_ewm_is_pandas_bit_for_bit(kernel: None, x: list[float], span: int, alpha: float | None,
                                         scale: float) -> None:
    arr = np.asarray(x, dtype=np.float64) * scale
    a = 2.0 / (span + 1.0) if alpha is None else alpha  # span 3: com == 1, pandas' irregular-interval branch
    expected = pd.Series(arr, copy=False).ewm(alpha=a, adjust=False).mean().to_numpy(dtype=np.float64)
    got = chunked._ewm(arr, a)
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize("name,params", [("sma", {"window": 10}), ("zscore", {"window": 20}),
                                         ("volatility", {"window": 7}), ("ema", {"span": 12}),
                                         ("ema", {"span": 3}), ("rsi", {"window": 14}), ("atr", {"window": 14})])
def test_indicators_are_unchanged_with_the_kernels(kernel: None, monkeypatch: pytest.MonkeyPatch, name: str,
                                                   params: dict[str, int]) -> None:
    from alphaforge.features.indicators import compute_chunked

    rng = np.random.default_rng(3)
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 20_000)))).astype(np.float32)
    close[5_000:5_003] = np.nan
    arrays = {"close": close, "high": close * np.float32(1.01), "low": close * np.float32(0.99)}
    compiled = compute_chunked(name, arrays, params, chunk_size=4_096)
    monkeypatch.setattr(chunked, "_rolling", None)
    reference = compute_chunked(name, arrays, params, chunk_size=4_096)
    np.testing.assert_array_equal(compiled.view(np.int32), reference.view(np.int32))


def test_kernel_checks_its_arguments(kernel: None) -> None:
    assert chunked._rolling is not None
    x = np.ones(5)
    with pytest.raises(ValueError):
        chunked._rolling.window_sums(x, 3, 3, np.empty(5), None, None)
    with pytest.raises(ValueError):
        chunked._rolling.window_sums(x, 3, 0, np.empty(4), None, None)
    with pytest.raises(ValueError):
        chunked._rolling.window_sums(x, 3, 0, np.empty(5), None, np.empty(5))
    with pytest.raises(TypeError):
        chunked._rolling.window_sums(x.astype(np.float32), 3, 0, np.empty(5), None, None)


@settings(max_examples=400, deadline=None)
@given(x=st.lists(values, min_size=1, max_size=120), window=st.integers(2, 25), origin=st.integers(0, 10_000),
       flat=st.integers(0, 30))
def test_kernel_zscore_is_the_numpy_zscore_bit_for_bit(kernel: None, x: list[float], window: int, origin: int,
                                                       flat: int) -> None:
    """``rolling_zscore`` (the zscore indicator's window function) by the kernel: rolling_std's and the
    z-score's numpy steps per bar, bit for bit — NaN windows, flat windows (std 0 -> NaN), any chunk origin."""
    arr = np.asarray(x + [x[-1]] * flat, dtype=np.float64)  # a flat tail: zero variance
    compiled = chunked.rolling_zscore(arr, window, origin)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(chunked, "_rolling", None)
        reference = chunked.rolling_zscore(arr, window, origin)
    np.testing.assert_array_equal(bits(compiled), bits(reference))
    np.testing.assert_array_equal(compiled.astype(np.float32).view(np.int32), reference.astype(np.float32).view(np.int32))
