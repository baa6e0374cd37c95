"""The compiled Sharpe sums (alphaforge/metrics/_moments.c) against numpy, bit for bit.

``metrics.sharpe`` is defined by ``np.mean`` and ``np.std(ddof=1)``; the kernel computes numpy's own pairwise
sums in one pass each, so every Sharpe ratio (the headline metric, the permutation test's statistic) keeps its
bits whether or not the kernel was built.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge import metrics
from alphaforge.errors import DataInvalid


@pytest.fixture(scope="module")
def kernel() -> None:
    if metrics._moments is None:
        assert os.environ.get("CI") != "true"
        pytest.skip("the compiled kernel is not built; tests/test_ledger_kernel.py says why")


def bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def numpy_sharpe(r: np.ndarray, bars_per_year: float) -> float:
    """``metrics.sharpe`` as without the kernel (numpy's mean and std)."""
    kernel, metrics._moments = metrics._moments, None
    try:
        return metrics.sharpe(r, bars_per_year)
    finally:
        metrics._moments = kernel


# sizes around the pairwise blocks (8, 128) and their recursive splits
SIZES = st.one_of(st.integers(0, 300), st.sampled_from([1023, 1024, 1025, 8191, 8192, 8193, 65_537, 500_001]))


@settings(max_examples=150, deadline=None)
@given(n=SIZES, seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-300, 1e-8, 1e-3, 1.0, 1e150]),
       offset=st.sampled_from([0.0, 1.0, -3.5]))
def test_the_sums_are_numpys_bit_for_bit(kernel: None, n: int, seed: int, scale: float, offset: float) -> None:
    rng = np.random.default_rng(seed)
    r = (rng.standard_normal(n) + offset) * scale * 10.0 ** rng.integers(-3, 3, n)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e150 squared overflows, in numpy as in the kernel
        total, hi, lo = metrics._moments.scan(r)
        assert bits(total) == bits(np.sum(r))
        if n:
            assert (hi, lo) == (r.max(), r.min())
            mean = float(np.sum(r)) / n
            assert bits(metrics._moments.squared_deviations(r, mean)) == bits(np.sum((r - mean) * (r - mean)))
        ours, theirs = metrics.sharpe(r, 252.0), numpy_sharpe(r, 252.0)
        assert bits(ours) == bits(theirs) or (math.isnan(ours) and math.isnan(theirs))


def test_signed_zeros_and_ties_and_non_finite_returns(kernel: None) -> None:
    for r in (np.array([-0.0] * 5), np.array([-0.0] * 200), np.array([]), np.array([0.5] * 300)):
        assert bits(metrics._moments.scan(r)[0]) == bits(np.sum(r))
        assert metrics.sharpe(r, 252.0) == 0.0
    r = np.linspace(-1e-3, 2e-3, 1000)
    r[617] = np.nan
    with pytest.raises(DataInvalid, match="bar 617"):
        metrics.sharpe(r, 252.0)
    r[617] = 1e308
    r[618] = 1e308  # finite returns whose sum overflows: numpy's path, as without the kernel
    with np.errstate(over="ignore", invalid="ignore"):
        assert bits(metrics.sharpe(r, 252.0)) == bits(numpy_sharpe(r, 252.0))
    # a float32 or strided series takes numpy's path: the same value as its float64 copy
    r = np.linspace(-1e-3, 2e-3, 999)
    assert metrics.sharpe(r[::2], 252.0) == metrics.sharpe(np.ascontiguousarray(r[::2]), 252.0)
    assert metrics.sharpe(r.astype(np.float32), 252.0) == metrics.sharpe(r.astype(np.float32).astype(float), 252.0)


def test_kernel_checks_its_arguments(kernel: None) -> None:
    with pytest.raises(TypeError, match="float64"):
        metrics._moments.scan(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        metrics._moments.scan(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="2 arguments"):
        metrics._moments.squared_deviations(np.zeros(4))
