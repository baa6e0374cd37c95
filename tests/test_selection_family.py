"""family_statistics: the report's composition of DSR, PBO, SPA/RC/StepM over one family."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection import (
    deflated_sharpe,
    family_block_length,
    family_statistics,
    probability_of_backtest_overfitting,
    spa_and_stepm,
)
from alphaforge.validation.block_length import optimal_block_length


def _family(n: int = 12, t: int = 640) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    bench = rng.normal(2e-4, 0.01, t)
    x = 0.3 * bench[:, None] + rng.normal(0, 0.01, (t, n))
    x[1:] += 0.25 * x[:-1]
    x[:, 5] += 1e-3
    return bench, x


def test_family_statistics_composes_the_parts() -> None:
    bench, x = _family()
    out = family_statistics(x, bench, bars_per_year=252.0, seed=4, reps=300, n_blocks=8)
    sharpes = x.mean(axis=0) / x.std(axis=0, ddof=1)
    assert out.best_index == int(np.argmax(sharpes)) == 5
    assert out.best_sharpe == pytest.approx(sharpes[5], rel=1e-12)
    assert out.n_trials == 12 and out.n_obs == 640
    ref_dsr = deflated_sharpe(x[:, 5], sharpes, 252.0)
    assert out.deflated.dsr == pytest.approx(ref_dsr.dsr, rel=1e-12)
    np.testing.assert_array_equal(out.pbo.logits, probability_of_backtest_overfitting(x, n_blocks=8).logits)
    assert out.block_length == max(1.0, optimal_block_length(x[:, 5] - bench).stationary)
    assert out.block_length == family_block_length(x[:, 5], bench)
    spa, step = spa_and_stepm(bench, x, reps=300, block_length=out.block_length, seed=4)
    assert out.spa == spa and out.stepm == step
    doc = json.loads(json.dumps(out.to_json(), allow_nan=False))
    assert doc["block_length_rule"].startswith("best_differential_stationary_")
    assert {"psr", "dsr", "min_trl_years"} <= set(doc["deflated"])
    assert {"value", "n_splits", "logit_mean", "degradation_slope"} <= set(doc["pbo"])
    assert {"pvalue_lower", "pvalue_consistent", "pvalue_upper", "reality_check_pvalue"} <= set(doc["spa"])
    assert {"alpha", "significant"} <= set(doc["stepm"])


def test_given_block_length_and_errors() -> None:
    bench, x = _family()
    out = family_statistics(x, bench, bars_per_year=252.0, seed=1, reps=50, n_blocks=4, block_length=3.0)
    assert out.block_length == 3.0 and out.block_length_rule == "given"
    with pytest.raises(ConfigInvalid, match="at least 2 configurations"):
        family_statistics(x[:, :1], bench, bars_per_year=252.0, seed=1, reps=50)
    with pytest.raises(DataInvalid, match="rows"):
        family_statistics(x[1:], bench, bars_per_year=252.0, seed=1, reps=50)
    with pytest.raises(DataInvalid):
        family_block_length(x[:5], bench[:5])
