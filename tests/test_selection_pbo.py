"""PBO (CSCV) against a brute-force reference written here from the paper (plain loops over every
combination, slicing the return matrix), plus the two limiting families and the input rules."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection import probability_of_backtest_overfitting


def _sharpe(x: np.ndarray) -> float:
    if x.max() == x.min():
        return 0.0
    return float(np.mean(x) / np.std(x, ddof=1))


def brute_force_pbo(returns: np.ndarray, n_blocks: int) -> tuple[float, list[float], list[float], list[float]]:
    """Bailey et al.'s CSCV, literally: drop the oldest leftover rows, cut S blocks, and for every choice of
    S/2 blocks slice the IS and OOS rows, rank by Sharpe and take the logit of the IS winner's OOS rank."""
    t, n = returns.shape
    m = t // n_blocks
    data = returns[t - m * n_blocks:]
    blocks = [data[i * m:(i + 1) * m] for i in range(n_blocks)]
    logits, is_perf, oos_perf = [], [], []
    for combo in itertools.combinations(range(n_blocks), n_blocks // 2):
        is_rows = np.vstack([blocks[i] for i in combo])
        oos_rows = np.vstack([blocks[i] for i in range(n_blocks) if i not in combo])
        is_sharpe = [_sharpe(is_rows[:, j]) for j in range(n)]
        oos_sharpe = [_sharpe(oos_rows[:, j]) for j in range(n)]
        best = 0
        for j in range(1, n):
            if is_sharpe[j] > is_sharpe[best]:
                best = j
        below = sum(1 for v in oos_sharpe if v < oos_sharpe[best])
        equal = sum(1 for v in oos_sharpe if v == oos_sharpe[best])
        rank = below + (equal + 1) / 2  # average rank of the tied group, 1 = worst
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        is_perf.append(is_sharpe[best])
        oos_perf.append(oos_sharpe[best])
    return sum(1 for x in logits if x <= 0) / len(logits), logits, is_perf, oos_perf


def _family(seed: int, t: int, n: int, skill: float = 0.0, duplicates: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, (t, 1))
    x = 0.5 * common + rng.normal(0, 0.01, (t, n)) + skill * rng.normal(0, 0.001, n)
    if duplicates and n > 2:
        x[:, 1] = x[:, 0]  # an exact tie in both halves
    return x


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n_blocks=st.sampled_from([4, 6, 8]), n=st.integers(2, 12),
       extra=st.integers(0, 7), rows=st.integers(2, 12), skill=st.sampled_from([0.0, 1.0]),
       duplicates=st.booleans())
def test_pbo_matches_brute_force(seed: int, n_blocks: int, n: int, extra: int, rows: int, skill: float,
                                 duplicates: bool) -> None:
    t = n_blocks * rows + extra % n_blocks
    x = _family(seed, t, n, skill, duplicates)
    ours = probability_of_backtest_overfitting(x, n_blocks=n_blocks)
    value, logits, is_perf, oos_perf = brute_force_pbo(x, n_blocks)
    assert ours.n_splits == math.comb(n_blocks, n_blocks // 2) == len(logits)
    np.testing.assert_allclose(ours.logits, logits, rtol=0, atol=1e-12)
    assert ours.value == value
    assert ours.rows_dropped == t - rows * n_blocks and ours.n_obs_used == rows * n_blocks
    assert ours.logit_mean == pytest.approx(float(np.mean(logits)), abs=1e-12)
    slope, intercept = np.polyfit(is_perf, oos_perf, 1) if np.ptp(is_perf) > 1e-9 else (math.nan, math.nan)
    if math.isfinite(slope):
        assert ours.degradation_slope == pytest.approx(slope, rel=1e-6, abs=1e-9)
        assert ours.degradation_intercept == pytest.approx(intercept, rel=1e-6, abs=1e-9)
    assert ours.prob_oos_loss == pytest.approx(float(np.mean(np.array(oos_perf) < 0)))


def test_pbo_matches_brute_force_at_the_default_sixteen_blocks() -> None:
    x = _family(7, 16 * 20 + 5, 6, skill=1.0)
    ours = probability_of_backtest_overfitting(x)
    value, logits, _, _ = brute_force_pbo(x, 16)
    assert ours.n_splits == 12870 and ours.n_blocks == 16 and ours.rows_dropped == 5
    np.testing.assert_allclose(ours.logits, logits, rtol=0, atol=1e-12)
    assert ours.value == value


def test_leftover_rows_are_dropped_from_the_start() -> None:
    x = _family(2, 403, 12)
    ours = probability_of_backtest_overfitting(x, n_blocks=8)
    trimmed = probability_of_backtest_overfitting(x[403 - 400:], n_blocks=8)
    assert ours.rows_dropped == 3 and trimmed.rows_dropped == 0
    np.testing.assert_array_equal(ours.logits, trimmed.logits)
    garbage = x.copy()
    garbage[:3] = 1e3  # the dropped rows never enter a block
    np.testing.assert_array_equal(probability_of_backtest_overfitting(garbage, n_blocks=8).logits, ours.logits)


def test_a_dominating_configuration_gives_zero() -> None:
    """Configuration 0 beats every other in every block: it wins IS and ranks first OOS in every split."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 0.01, (640, 30))
    x[:, 0] = 0.01 + rng.normal(0, 0.001, 640)  # per-bar Sharpe about 10, others about 0
    out = probability_of_backtest_overfitting(x)
    assert out.value == 0.0
    assert np.allclose(out.logits, math.log(30 / 1))  # rank N: omega = N / (N + 1)
    assert out.informative and out.prob_oos_loss == 0.0


def test_pure_noise_is_high() -> None:
    """Pure noise: the IS winner's OOS rank is uniform on 1..N, so E[PBO] = 1/2 for even N. One family's
    PBO is a noisy estimate (splits share their data), so the check is on the mean over 30 families; it must
    sit near 1/2, well above the 0 of a real edge (the threshold of the issue, "high", is read as > 0.3)."""
    values = [probability_of_backtest_overfitting(_family(seed, 800, 20), n_blocks=8).value for seed in range(30)]
    assert 0.4 < float(np.mean(values)) < 0.65
    assert float(np.median(values)) > 0.3


def test_informative_flag_and_json() -> None:
    small = probability_of_backtest_overfitting(_family(1, 200, 9), n_blocks=4)
    assert not small.informative and "9 distinct configurations (of 9)" in small.note
    big = probability_of_backtest_overfitting(_family(1, 200, 10), n_blocks=4)
    assert big.informative and big.note == ""
    doc = json.loads(json.dumps(big.to_json(), allow_nan=False))
    assert doc["n_splits"] == 6 and len(doc["logits"]["values"]) == 6
    assert doc["logits"]["summary"]["mean"] == pytest.approx(big.logit_mean)
    assert set(doc) >= {"value", "n_splits", "logit_mean", "degradation_slope", "informative", "note"}


def test_duplicated_configurations_are_not_informative() -> None:
    """12 columns, 3 distinct (4 copies each): the IS winner always ties with its copies OOS."""
    base = _family(6, 320, 3)
    x = np.repeat(base, 4, axis=1)
    out = probability_of_backtest_overfitting(x, n_blocks=8)
    assert out.n_configs == 12 and out.n_distinct_configs == 3 and not out.informative
    assert "3 distinct configurations (of 12)" in out.note


def test_undefined_degradation_slope_is_null() -> None:
    x = np.zeros((40, 3))
    x[:, 0] = np.tile([0.01, -0.01], 20)
    out = probability_of_backtest_overfitting(x, n_blocks=4)
    assert math.isnan(out.degradation_slope) and out.to_json()["degradation_slope"] is None


@pytest.mark.parametrize(("shape", "n_blocks", "match"), [
    ((100, 1), 4, "at least 2 configurations"),
    ((100, 5), 2, "even"),
    ((100, 5), 5, "even"),
    ((100, 5), 22, "even"),
    ((15, 5), 8, "at least 16 rows"),
])
def test_config_invalid(shape: tuple[int, int], n_blocks: int, match: str) -> None:
    with pytest.raises(ConfigInvalid, match=match) as info:
        probability_of_backtest_overfitting(np.random.default_rng(0).normal(size=shape), n_blocks=n_blocks)
    assert info.value.error_code == "CONFIG_INVALID"


def test_data_invalid() -> None:
    x = np.random.default_rng(0).normal(size=(100, 4))
    x[10, 2] = np.nan
    with pytest.raises(DataInvalid, match=r"\[10, 2\]"):
        probability_of_backtest_overfitting(x, n_blocks=4)
    with pytest.raises(DataInvalid):
        probability_of_backtest_overfitting(np.zeros(100), n_blocks=4)


def test_column_order_does_not_matter_without_ties() -> None:
    x = _family(12, 480, 15, skill=1.0)
    order = np.random.default_rng(1).permutation(15)
    a = probability_of_backtest_overfitting(x, n_blocks=8)
    b = probability_of_backtest_overfitting(x[:, order], n_blocks=8)
    assert a.value == b.value
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-12)
