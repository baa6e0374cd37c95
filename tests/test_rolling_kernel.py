"""The compiled rolling-moments kernel (alphaforge/features/_rolling.c) against the numpy reference, bit for bit.

``window_moments`` defines every window sum of the sma / zscore / volatility indicators (block prefix sums plus
the previous block's suffix sums, numpy's sequential cumsum); the kernel must reproduce ``s1``, ``s2`` and the
deviations bit for bit for any slice, window, origin (chunk offset) and NaN pattern.
"""

from __future__ import annotations

import os

import numpy as np
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


@pytest.mark.parametrize("name,params", [("sma", {"window": 10}), ("zscore", {"window": 20}),
                                         ("volatility", {"window": 7})])
def test_indicators_are_unchanged_with_the_kernel(kernel: None, monkeypatch: pytest.MonkeyPatch, name: str,
                                                  params: dict[str, int]) -> None:
    from alphaforge.features.indicators import compute_chunked

    rng = np.random.default_rng(3)
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 20_000)))).astype(np.float32)
    close[5_000:5_003] = np.nan
    compiled = compute_chunked(name, {"close": close}, params, chunk_size=4_096)
    monkeypatch.setattr(chunked, "_rolling", None)
    reference = compute_chunked(name, {"close": close}, params, chunk_size=4_096)
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
