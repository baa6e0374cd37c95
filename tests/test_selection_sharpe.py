"""PSR, DSR and MinTRL: the DSR paper's worked example, calibration by simulation, and an independent
reference (scipy's moments) for :func:`deflated_sharpe`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection import (
    deflated_sharpe,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)

# Bailey & López de Prado (2014), "The deflated Sharpe ratio", worked example: 250 trading days a year.
DAYS = 250.0
EXAMPLE_SR = 2.5 / math.sqrt(DAYS)  # annual 2.5, per day
EXAMPLE_VAR = 0.5 / DAYS  # annual variance of the trials' Sharpe ratios 0.5, per day
EXAMPLE_N, EXAMPLE_T, EXAMPLE_SKEW, EXAMPLE_KURT = 100, 1250, -3.0, 10.0


def test_dsr_paper_worked_example() -> None:
    assert expected_max_sharpe(EXAMPLE_N, 1.0) == pytest.approx(2.5306, abs=1e-4)
    sr0 = expected_max_sharpe(EXAMPLE_N, EXAMPLE_VAR)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    dsr = probabilistic_sharpe_ratio(EXAMPLE_SR, sr0, EXAMPLE_T, EXAMPLE_SKEW, EXAMPLE_KURT)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_expected_max_sharpe_tracks_the_simulated_maximum() -> None:
    """The extreme-value approximation is within 3.5 % of the simulated mean maximum of N standard normals."""
    rng = np.random.default_rng(11)
    for n in (10, 100, 1000):
        simulated = rng.standard_normal((4000, n)).max(axis=1).mean()
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.035)
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))


@pytest.mark.parametrize("kind", ["normal", "skewed"])
def test_psr_is_calibrated(kind: str) -> None:
    """At the true Sharpe ratio, PSR is (asymptotically) uniform: PSR >= 0.95 in about 5 % of samples. The
    skewed case (a centred gamma) needs the skew/kurtosis terms: the normal formula over-rejects there."""
    rng = np.random.default_rng(5)
    n_obs, n_series, true_sr = 1000, 3000, 0.05
    if kind == "normal":
        x = rng.standard_normal((n_series, n_obs))
    else:
        shape = 1.0
        x = (rng.gamma(shape, size=(n_series, n_obs)) - shape) / math.sqrt(shape)
        x = -x  # negative skew, fat tails
    r = x + true_sr
    sr = r.mean(axis=1) / r.std(axis=1, ddof=1)
    skew = stats.skew(r, axis=1)
    kurt = stats.kurtosis(r, axis=1, fisher=True) + 3.0
    psr = np.array([probabilistic_sharpe_ratio(s, true_sr, n_obs, g3, g4) for s, g3, g4 in zip(sr, skew, kurt, strict=True)])
    rate = float(np.mean(psr >= 0.95))
    assert abs(rate - 0.05) < 0.015, rate


def test_min_trl_is_where_psr_reaches_the_probability() -> None:
    for sr, sr0, skew, kurt in [(0.1, 0.0, 0.0, 3.0), (EXAMPLE_SR, 0.1132, EXAMPLE_SKEW, EXAMPLE_KURT),
                                (0.05, 0.01, -0.5, 6.0)]:
        trl = min_track_record_length(sr, sr0, skew, kurt, prob=0.95)
        # PSR uses sqrt(T - 1): at T = MinTRL exactly, it equals the probability
        z = (sr - sr0) * math.sqrt(trl - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
        assert stats.norm.cdf(z) == pytest.approx(0.95, abs=1e-12)
        assert probabilistic_sharpe_ratio(sr, sr0, math.ceil(trl), skew, kurt) >= 0.95
        assert probabilistic_sharpe_ratio(sr, sr0, math.floor(trl), skew, kurt) < 0.95
    assert min_track_record_length(0.1, 0.1, 0.0, 3.0) == math.inf
    assert min_track_record_length(0.05, 0.1, 0.0, 3.0) == math.inf


def test_min_trl_normal_case_matches_the_closed_form() -> None:
    """Normal IID returns: MinTRL = 1 + (1 + SR²/2) (z / SR)² against 0 (Lo 2002's variance of the Sharpe)."""
    sr = 1.0 / math.sqrt(252)  # annual 1.0 on daily bars
    expected = 1 + (1 + sr * sr / 2) * (1.6448536269514722 / sr) ** 2
    assert min_track_record_length(sr, 0.0, 0.0, 3.0) == pytest.approx(expected, rel=1e-12)
    assert expected / 252 == pytest.approx(2.71, abs=0.01)  # about 2.7 years of daily data


def test_deflated_sharpe_against_an_independent_reference() -> None:
    rng = np.random.default_rng(3)
    trials = rng.normal(0.0, 0.01, (1500, 40)) + np.linspace(0, 0.0008, 40)
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    best = trials[:, int(np.argmax(sharpes))]
    out = deflated_sharpe(best, sharpes, bars_per_year=252.0)
    sr = best.mean() / best.std(ddof=1)
    skew = float(stats.skew(best))
    kurt = float(stats.kurtosis(best, fisher=False))
    var = float(np.var(sharpes, ddof=1))
    g = 0.5772156649015329
    sr0 = math.sqrt(var) * ((1 - g) * stats.norm.ppf(1 - 1 / 40) + g * stats.norm.ppf(1 - 1 / (40 * math.e)))
    denom = math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    assert out.n_trials == 40 and out.n_obs == 1500
    assert out.sharpe == pytest.approx(sr, rel=1e-12)
    assert out.sharpe_annual == pytest.approx(sr * math.sqrt(252), rel=1e-12)
    assert out.skew == pytest.approx(skew, rel=1e-10) and out.kurtosis == pytest.approx(kurt, rel=1e-10)
    assert out.var_trial_sharpe == pytest.approx(var, rel=1e-12)
    assert out.sharpe0 == pytest.approx(sr0, rel=1e-12)
    assert out.psr == pytest.approx(stats.norm.cdf(sr * math.sqrt(1499) / denom), rel=1e-12)
    assert out.dsr == pytest.approx(stats.norm.cdf((sr - sr0) * math.sqrt(1499) / denom), rel=1e-12)
    assert out.dsr < out.psr
    assert out.min_trl_years == pytest.approx(out.min_trl_bars / 252.0)
    doc = json.loads(json.dumps(out.to_json(), allow_nan=False))
    assert doc["dsr"] == pytest.approx(out.dsr) and doc["n_trials"] == 40


def test_deflated_sharpe_edge_cases() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 500)
    one = deflated_sharpe(r, np.array([0.1]), 252.0)  # one trial: nothing to deflate
    assert one.sharpe0 == 0.0 and one.dsr == one.psr and one.var_trial_sharpe == 0.0
    flat = deflated_sharpe(np.full(100, 0.001), np.array([0.0, 0.1, 0.2]), 252.0)
    assert flat.sharpe == 0.0 and flat.psr == 0.5 and flat.min_trl_bars == math.inf
    assert flat.to_json()["min_trl_bars"] is None and flat.to_json()["min_trl_years"] is None


def test_invalid_inputs() -> None:
    with pytest.raises(ConfigInvalid):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ConfigInvalid):
        expected_max_sharpe(10, -1.0)
    with pytest.raises(ConfigInvalid):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ConfigInvalid, match="kurtosis"):
        probabilistic_sharpe_ratio(1.0, 0.0, 100, 3.0, 1.0)  # 1 - 3 + 0 < 0: impossible moments
    with pytest.raises(ConfigInvalid):
        min_track_record_length(0.1, 0.0, 0.0, 3.0, prob=1.0)
    with pytest.raises(ConfigInvalid):
        deflated_sharpe(np.ones(10), np.array([0.1]), 0.0)
    with pytest.raises(ConfigInvalid):
        deflated_sharpe(np.arange(10.0), np.array([]), 252.0)
    with pytest.raises(DataInvalid):
        deflated_sharpe(np.array([0.1, np.nan, 0.2]), np.array([0.1]), 252.0)
    with pytest.raises(DataInvalid):
        deflated_sharpe(np.array([0.1]), np.array([0.1]), 252.0)


@settings(max_examples=60, deadline=None)
@given(sr=st.floats(-0.3, 0.3), sr0=st.floats(-0.1, 0.2), n=st.integers(2, 5000), skew=st.floats(-2, 2),
       excess=st.floats(0.0, 10.0))
def test_psr_is_monotone(sr: float, sr0: float, n: int, skew: float, excess: float) -> None:
    """PSR rises with the observed Sharpe and, above the threshold, with the track record."""
    kurt = 1.0 + skew * skew + excess  # always a possible (skew, kurtosis) pair
    psr = probabilistic_sharpe_ratio(sr, sr0, n, skew, kurt)
    assert 0.0 <= psr <= 1.0
    if sr > sr0:
        assert probabilistic_sharpe_ratio(sr, sr0, n + 100, skew, kurt) >= psr
        assert psr >= 0.5
    elif sr < sr0:
        assert psr <= 0.5
