"""The Politis–White block-length rule, checked against its reference implementation
(``arch.bootstrap.optimal_block_length``) and against what the rule must see."""

from __future__ import annotations

import numpy as np
import pytest
from arch.bootstrap import optimal_block_length as arch_optimal_block_length

from alphaforge.errors import DataInvalid
from alphaforge.validation.block_length import RULE, optimal_block_length


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    shocks = rng.standard_normal(n + 200)
    out = np.empty_like(shocks)
    out[0] = shocks[0]
    for i in range(1, out.shape[0]):
        out[i] = phi * out[i - 1] + shocks[i]
    return out[200:]


def ma_lag(rng: np.random.Generator, n: int, lag: int, theta: float) -> np.ndarray:
    shocks = rng.standard_normal(n + lag)
    return shocks[lag:] + theta * shocks[:-lag]


def series_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(20261130)
    cases: list[tuple[str, np.ndarray]] = []
    for n in (50, 500, 2_000, 20_000):
        for phi in (0.0, 0.3, 0.6, 0.8):
            cases.append((f"ar1 phi={phi} n={n}", ar1(rng, n, phi)))
        cases.append((f"ma5 n={n}", ma_lag(rng, n, 5, 0.6)))
    return cases


@pytest.mark.parametrize(("name", "x"), series_cases(), ids=[c[0] for c in series_cases()])
def test_agrees_with_arch_to_rounding(name: str, x: np.ndarray) -> None:
    ours = optimal_block_length(x)
    ref = arch_optimal_block_length(x)
    assert ours.stationary == pytest.approx(float(ref["stationary"].iloc[0]), rel=1e-8), name
    assert ours.circular == pytest.approx(float(ref["circular"].iloc[0]), rel=1e-8), name


def test_sees_dependence_at_lag_five_only() -> None:
    # lags 1..4 are quiet; a first-quiet-lag rule would stop at lag 1 and call this IID
    x = ma_lag(np.random.default_rng(7), 2_000, 5, 0.6)
    got = optimal_block_length(x)
    assert got.m_hat is not None and got.m_hat >= 5
    assert got.circular > 5.0


def test_iid_series_gets_a_short_block_and_dependent_a_long_one() -> None:
    rng = np.random.default_rng(11)
    iid = optimal_block_length(rng.standard_normal(5_000))
    dependent = optimal_block_length(ar1(rng, 5_000, 0.8))
    assert iid.circular < 3.0
    assert dependent.circular > 10.0 * iid.circular


def test_cap_and_record() -> None:
    x = np.cumsum(np.random.default_rng(3).standard_normal(400))  # a random walk: dependence beyond any cap
    got = optimal_block_length(x)
    assert got.circular <= got.b_max == int(np.ceil(min(3 * np.sqrt(400), 400 / 3)))
    record = got.to_json()
    assert record["rule"] == RULE and record["n_obs"] == 400 and record["b_max"] == got.b_max


def test_constant_series_has_no_dependence() -> None:
    got = optimal_block_length(np.full(100, 0.01))
    assert got.circular == 1.0 and got.stationary == 1.0


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((20, 2)), np.array([0.1] * 20 + [np.nan])])
def test_bad_input_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(DataInvalid):
        optimal_block_length(bad)
