"""Bootstrap: block-length rule, fast statistics == metrics on materialized resamples, agreement with arch."""

from __future__ import annotations

import math

import _metric_oracle as oracle
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.config import BootstrapConfig
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import rng_for
from alphaforge.validation import bootstrap as bmod
from alphaforge.validation.bootstrap import (
    BlockSums,
    autocorrelation,
    bootstrap_ci,
    bootstrap_distribution,
    choose_block_length,
    resample_indices,
)

BPY = 252.0


def ar1(n: int, phi: float, seed: int, mu: float = 5e-4, sigma: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) * sigma
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x + mu


def iid(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * 0.01 + 3e-4


# ---------------------------------------------------------------- block length


def test_autocorrelation_matches_direct_sum() -> None:
    x = ar1(300, 0.5, 1)
    xc = x - x.mean()
    direct = np.array([np.dot(xc[: len(x) - k], xc[k:]) for k in range(11)]) / np.dot(xc, xc)
    np.testing.assert_allclose(autocorrelation(x, 10), direct, atol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_ar1_phi04_chooses_hadj_bb_with_sensible_block(seed: int) -> None:
    r = ar1(3000, 0.4, seed)
    res = bootstrap_ci(r, BootstrapConfig(n=200), seed=seed, bars_per_year=BPY)
    assert res.method == "hadj_bb" and not res.fallback
    assert res.block_length is not None and 2 <= res.block_length <= 30
    assert res.jitter == 1
    assert res.reason.startswith("politis_white")
    # the rule and its inputs are recorded
    assert res.block_rule is not None and res.block_rule["rule"] == "politis_white_2004_ppw_2009"
    assert res.block_rule["n_obs"] == 3000 and abs(res.block_length - round(res.block_rule["circular"])) <= 1


@pytest.mark.parametrize(("phi", "seed"), [(0.3, 1), (0.6, 11), (0.8, 4)])
def test_block_is_archs_politis_white_circular_block_then_jittered(phi: float, seed: int) -> None:
    """Cross-check with arch: jitter 0 gives round(arch.bootstrap.optimal_block_length(r)["circular"])."""
    from arch.bootstrap import optimal_block_length as arch_rule

    r = ar1(5000, phi, seed)
    expected = min(round(float(arch_rule(r)["circular"].iloc[0])), bmod.MAX_BLOCK)
    block0, _ = choose_block_length(r, jitter=0, rng=rng_for(1, "jitter"))
    assert block0 == expected
    seen = set()
    for s in range(40):
        block, _ = choose_block_length(r, jitter=2, rng=rng_for(s, "jitter"))
        assert block is not None and abs(block - expected) <= 2
        seen.add(block)
    assert len(seen) > 1  # the jitter really moves the block


def test_dependence_only_at_lag_5_gets_a_block_not_the_iid_fallback() -> None:
    """x[t] = e[t] + 0.6 e[t-5]: lags 1..4 are quiet, which the first-quiet-lag rule mistook for IID."""
    e = np.random.default_rng(5).standard_normal(2005)
    r = (e[5:] + 0.6 * e[:-5]) * 0.01 + 3e-4
    rho = bmod.autocorrelation(r, 6)
    assert abs(rho[1]) <= 2 / math.sqrt(len(r)) < abs(rho[5])  # the old rule's trap
    block, reason = choose_block_length(r, jitter=0, rng=rng_for(1, "jitter"))
    assert block is not None and block >= 10, reason


def test_iid_noise_falls_back_to_simple_for_most_seeds() -> None:
    fallbacks = 0
    for seed in range(40):
        block, reason = choose_block_length(iid(2000, seed), jitter=1, rng=rng_for(seed, "jitter"))
        fallbacks += block is None
        if block is None:
            assert reason.startswith("no_dependence")
    assert fallbacks >= 34


def test_short_and_degenerate_series_fall_back() -> None:
    short = bootstrap_ci(ar1(9, 0.9, 1), BootstrapConfig(n=50), seed=1, bars_per_year=BPY)
    assert short.fallback and short.method == "simple" and short.reason.startswith("fallback to simple: too_short")
    assert short.block_rule is None
    # strong persistence on a short series: a dependent bootstrap, never more than n // 5 bars a block
    persistent = np.linspace(-0.01, 0.012, 60)
    res = bootstrap_ci(persistent, BootstrapConfig(n=50), seed=1, bars_per_year=BPY)
    assert not res.fallback and res.block_length is not None and 2 <= res.block_length <= 60 // 5
    const = bootstrap_ci(np.full(100, 1e-3), BootstrapConfig(n=50), seed=1, bars_per_year=BPY)
    assert const.fallback and "zero_variance" in const.reason
    assert const.sharpe_low == const.sharpe_high == 0.0
    assert const.cagr_low == const.cagr_high == pytest.approx(oracle.cagr(np.full(100, 1e-3), BPY), rel=1e-6)


@pytest.mark.parametrize("value", [1e-3, 0.1, -0.3, 7e-5, 0.0])
@pytest.mark.parametrize("method", ["hadj_bb", "simple"])
def test_constant_returns_have_a_degenerate_zero_sharpe_interval(value: float, method: str) -> None:
    r = np.full(257, value)
    res = bootstrap_ci(r, BootstrapConfig(n=100, method=method), seed=2, bars_per_year=BPY)
    assert res.method == "simple" and res.sharpe_low == res.sharpe_high == 0.0 == oracle.sharpe(r, BPY)
    assert res.cagr_low == res.cagr_high == pytest.approx(oracle.cagr(r, BPY), rel=1e-6, abs=1e-12)


def test_block_is_capped_at_50() -> None:
    r = ar1(20000, 0.995, 3)
    block, reason = choose_block_length(r, jitter=1, rng=rng_for(1, "jitter"))
    assert reason.startswith("pw_cap") and block is not None and 49 <= block <= 50


def test_zero_trials_disables_the_bootstrap_but_keeps_coherent_metadata() -> None:
    res = bootstrap_ci(ar1(3000, 0.4, 1), BootstrapConfig(n=0), seed=3, bars_per_year=BPY)
    assert res.method == "hadj_bb" and res.block_length is not None and res.jitter == 1
    assert res.sharpe_low is None and res.cagr_high is None and res.sharpe_digest is None
    assert res.reason.endswith("disabled (n = 0)")


def test_configured_simple_is_not_a_fallback() -> None:
    res = bootstrap_ci(ar1(2000, 0.4, 1), BootstrapConfig(n=100, method="simple"), seed=3, bars_per_year=BPY)
    assert (res.method, res.block_length, res.jitter, res.fallback) == ("simple", None, None, False)


# ---------------------------------------------------------------- fast statistic == metrics


@pytest.mark.parametrize("block", [1, 2, 5, 7, 50, 997])
def test_fast_statistics_equal_metrics_on_materialized_resample(block: int) -> None:
    r = ar1(997, 0.3, 5)  # 997 is prime: every block > 1 has a partial last block
    r[13] = -1.0  # a ruin bar: log1p = -inf, CAGR of any resample holding it is -1
    sums = BlockSums(r, block, BPY)
    starts = sums.draw_starts(bmod.chunk_rng(9, 0), 25)
    sharpe, cagr = sums.statistics(starts)
    for i in range(len(starts)):
        x = r[resample_indices(starts[i], len(r), block)]
        assert len(x) == len(r)
        assert sharpe[i] == pytest.approx(oracle.sharpe(x, BPY), rel=1e-9, abs=1e-12)
        with np.errstate(divide="ignore"):
            expected_cagr = oracle.cagr(x, BPY)
        assert cagr[i] == pytest.approx(expected_cagr, rel=1e-9, abs=1e-12)


def test_partial_last_block_has_exact_length() -> None:
    starts = np.array([5, 0, 8], dtype=np.int32)
    idx = resample_indices(starts, 10, 4)
    assert idx.tolist() == [5, 6, 7, 8, 0, 1, 2, 3, 8, 9]
    r = np.arange(10, dtype=np.float64) * 1e-3
    sums = BlockSums(r, 4, BPY)
    assert sums.sums(starts[None, :])[0, 0] + 10 * sums.center == pytest.approx(r[idx].sum())


def test_distribution_is_independent_of_worker_count() -> None:
    r = ar1(1500, 0.4, 2)
    a = bootstrap_distribution(r, block_length=6, n=300, seed=4, bars_per_year=BPY, workers=1)
    b = bootstrap_distribution(r, block_length=6, n=300, seed=4, bars_per_year=BPY, workers=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(("n", "block"), [(997, 1), (997, 3), (997, 7), (70_001, 1), (70_001, 9), (70_000, 2)])
def test_trials_are_the_statistics_of_their_drawn_starts(n: int, block: int) -> None:
    """run() (counted or gathered, chunk by chunk) == the statistics of the starts draw_starts() returns."""
    r = ar1(n, 0.2, 4)
    r[n // 3] = -1.0  # a ruin bar
    sums = BlockSums(r, block, BPY)
    run = sums.run(bmod.chunk_rng(5, 2), 8)
    ref = sums.statistics(sums.draw_starts(bmod.chunk_rng(5, 2), 8))
    for ours, theirs in zip(run, ref, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("n", [50, 40_000])
def test_drawn_starts_are_uniform(n: int) -> None:
    """Chi-square check of the block starts over [0, n) (40,000 spans a full and a partial table chunk)."""
    sums = BlockSums(iid(n, 1), 1, BPY)
    trials = 400 if n == 50 else 10
    starts = np.concatenate([sums.draw_starts(bmod.chunk_rng(8, c), trials).ravel() for c in range(4)])
    bins = 50
    observed = np.bincount(starts * bins // n, minlength=bins)
    expected = np.bincount(np.arange(n) * bins // n, minlength=bins) * (len(starts) / n)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 100.0  # 49 degrees of freedom: P(chi2 > 100) < 1e-4


def test_chunks_draw_from_distinct_generators() -> None:
    r = iid(300, 2)
    sharpe, _ = bootstrap_distribution(r, block_length=1, n=3 * bmod.CHUNK_TRIALS, seed=4, bars_per_year=BPY)
    chunks = sharpe.reshape(3, bmod.CHUNK_TRIALS)
    assert not np.array_equal(chunks[0], chunks[1]) and not np.array_equal(chunks[1], chunks[2])


# ---------------------------------------------------------------- agreement with references


def _percentiles(x: np.ndarray, ci: float = 0.95) -> np.ndarray:
    return np.quantile(x, [(1 - ci) / 2, 1 - (1 - ci) / 2])


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_ci_agrees_with_arch_circular_block_bootstrap(seed: int) -> None:
    from arch.bootstrap import CircularBlockBootstrap

    r = ar1(2000, 0.4, seed)
    block, reps = 5, 1000

    def stats(x: np.ndarray) -> np.ndarray:
        return np.array([oracle.sharpe(x, BPY), oracle.cagr(x, BPY)])

    ref = CircularBlockBootstrap(block, r, seed=seed).apply(stats, reps)
    sharpe, cagr = bootstrap_distribution(r, block_length=block, n=reps, seed=seed, bars_per_year=BPY)
    for ours, theirs in ((sharpe, ref[:, 0]), (cagr, ref[:, 1])):
        sd = theirs.std()
        # Monte Carlo s.e. of a 2.5 % percentile from 1000 draws is ~0.085 sd; difference of two: ~0.12 sd
        np.testing.assert_allclose(_percentiles(ours), _percentiles(theirs), atol=0.45 * sd)
        assert ours.std() == pytest.approx(sd, rel=0.12)
        assert ours.mean() == pytest.approx(theirs.mean(), abs=0.2 * sd)


def test_iid_fallback_agrees_with_plain_numpy_iid_bootstrap() -> None:
    r = iid(1500, 8)
    res = bootstrap_ci(r, BootstrapConfig(n=1000), seed=5, bars_per_year=BPY)
    assert res.fallback and res.method == "simple"
    rng = np.random.default_rng(123)
    ref = np.array([[oracle.sharpe(x, BPY), oracle.cagr(x, BPY)] for x in r[rng.integers(0, len(r), (1000, len(r)))]])
    for (low, high), col in (((res.sharpe_low, res.sharpe_high), 0), ((res.cagr_low, res.cagr_high), 1)):
        assert low is not None and high is not None
        sd = ref[:, col].std()
        np.testing.assert_allclose([low, high], _percentiles(ref[:, col]), atol=0.45 * sd)


def test_iid_distribution_is_the_plain_iid_bootstrap_exactly() -> None:
    """Block 1 draws n indices per trial: each trial is the metrics of the plain resample r[indices]."""
    r = iid(400, 3)
    sharpe, cagr = bootstrap_distribution(r, block_length=1, n=50, seed=6, bars_per_year=BPY)
    sums = BlockSums(r, 1, BPY)
    starts = np.concatenate([sums.draw_starts(bmod.chunk_rng(6, c), min(bmod.CHUNK_TRIALS, 50 - c * bmod.CHUNK_TRIALS))
                             for c in range(-(-50 // bmod.CHUNK_TRIALS))])
    assert starts.shape == (50, 400)
    for i in range(50):
        x = r[starts[i]]
        assert sharpe[i] == pytest.approx(oracle.sharpe(x, BPY), rel=1e-9)
        assert cagr[i] == pytest.approx(oracle.cagr(x, BPY), rel=1e-9)


# ---------------------------------------------------------------- determinism and digests


def test_same_seed_same_digests_different_seed_different_digests() -> None:
    r = ar1(2000, 0.4, 1)
    a = bootstrap_ci(r, BootstrapConfig(n=200), seed=10, bars_per_year=BPY)
    b = bootstrap_ci(r, BootstrapConfig(n=200), seed=10, bars_per_year=BPY)
    c = bootstrap_ci(r, BootstrapConfig(n=200), seed=11, bars_per_year=BPY)
    assert a == b
    assert a.sharpe_digest != c.sharpe_digest and a.cagr_digest != c.cagr_digest
    sharpe, cagr = bootstrap_distribution(r, block_length=a.block_length or 1, n=200, seed=10, bars_per_year=BPY)
    assert a.sharpe_digest == bmod._digest(sharpe) and a.cagr_digest == bmod._digest(cagr)


def test_ci_endpoints_are_float32_and_bracket_the_distribution() -> None:
    r = ar1(2000, 0.4, 2)
    res = bootstrap_ci(r, BootstrapConfig(n=500, ci=0.9), seed=3, bars_per_year=BPY)
    for v in (res.sharpe_low, res.sharpe_high, res.cagr_low, res.cagr_high):
        assert float(np.float32(v)) == v
    sharpe, _ = bootstrap_distribution(r, block_length=res.block_length or 1, n=500, seed=3, bars_per_year=BPY)
    assert np.mean(sharpe < res.sharpe_low) == pytest.approx(0.05, abs=0.01)
    assert np.mean(sharpe > res.sharpe_high) == pytest.approx(0.05, abs=0.01)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 400),
    phi=st.sampled_from([0.0, 0.3, 0.7, 0.98]),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["hadj_bb", "simple"]),
    jitter=st.integers(0, 3),
    ci=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    scale=st.sampled_from([1e-8, 0.01, 0.3]),
)
def test_coherence_rule_always_holds(
    n: int, phi: float, seed: int, method: str, jitter: int, ci: float, scale: float
) -> None:
    r = ar1(n, phi, seed % 1000, sigma=scale)
    res = bootstrap_ci(r, BootstrapConfig(n=30, method=method, ci=ci, jitter=jitter), seed=seed,
                       bars_per_year=BPY)
    if res.method == "simple":
        assert res.block_length is None and res.jitter is None
        assert res.fallback == (method == "hadj_bb")
    else:
        assert method == "hadj_bb" and not res.fallback
        assert res.block_length is not None and 1 <= res.block_length <= min(50, n // 5)
        assert res.jitter == jitter
    for low, high in ((res.sharpe_low, res.sharpe_high), (res.cagr_low, res.cagr_high)):
        assert low is not None and high is not None
        assert math.isfinite(low) and math.isfinite(high)
        assert np.float32(low) <= np.float32(high)


# ---------------------------------------------------------------- input errors


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 2**32}, {"bars_per_year": 0.0}])
def test_bad_arguments_raise_config_invalid(kwargs: dict[str, object]) -> None:
    """The seed and bars_per_year are checked here; the section's values were checked by load_config."""
    args: dict[str, object] = {"seed": 1, "bars_per_year": BPY, **kwargs}
    with pytest.raises(ConfigInvalid):
        bootstrap_ci(ar1(100, 0.2, 1), BootstrapConfig(), **args)  # type: ignore[arg-type]


def test_bad_returns_raise_data_invalid() -> None:
    with pytest.raises(DataInvalid, match="bar 3"):
        bootstrap_ci(np.array([0.0, 0.1, 0.2, np.nan, 0.1]), BootstrapConfig(), seed=1, bars_per_year=BPY)
    with pytest.raises(DataInvalid):
        bootstrap_ci(np.array([0.01]), BootstrapConfig(), seed=1, bars_per_year=BPY)
