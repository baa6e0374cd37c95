"""Every selection statistic of one family of trials, from its return matrix: what ``sweep report`` stores.

Input: ``returns`` (``T x N``, the per-bar strategy returns of the ``N`` completed trials on the same ``T``
bars, columns in the caller's trial order) and ``benchmark`` (``T``, e.g. buy-and-hold's per-bar returns).

* **Best trial** = the column with the highest per-bar Sharpe ratio (:func:`sharpe_per_bar`; ties: the lowest
  column index). ``n_trials = N``.
* **DSR / PSR / MinTRL** = :func:`.sharpe.deflated_sharpe` of the best column, with every column's Sharpe as
  the trials.
* **PBO** = :func:`.pbo.probability_of_backtest_overfitting` with ``n_blocks`` blocks (``CONFIG_INVALID`` for
  fewer than 2 trials, as the issue asks: a report over one trial has no family to cross-validate).
* **SPA / Reality Check / StepM** = :func:`.spa.spa_and_stepm` (studentized), ``reps`` repetitions from
  ``seed``. The block length, unless the caller passes one, is the project's rule
  (:func:`alphaforge.validation.block_length.optimal_block_length`, stationary bootstrap) applied to the
  **best trial's differential** ``returns[:, best] - benchmark`` (the comparison the test is about; the rule
  ``sweep report`` documents), floored at 1 bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection._arrays import as_matrix, as_series, json_float, sharpe_per_bar
from alphaforge.selection.pbo import DEFAULT_BLOCKS, PBO, probability_of_backtest_overfitting
from alphaforge.selection.sharpe import DeflatedSharpe, deflated_sharpe
from alphaforge.selection.spa import DEFAULT_ALPHA, DEFAULT_REPS, SPA, StepM, spa_and_stepm
from alphaforge.validation.block_length import MIN_OBS, RULE, optimal_block_length

BLOCK_RULE = f"best_differential_stationary_{RULE}"


def family_block_length(best_returns: np.ndarray, benchmark: np.ndarray) -> float:
    """The stationary block length of ``best_returns - benchmark`` by the project's rule, at least 1 bar."""
    diff = as_series(best_returns, "best_returns") - as_series(benchmark, "benchmark")
    if diff.shape[0] < MIN_OBS:
        raise DataInvalid(f"the block length rule needs at least {MIN_OBS} bars, got {diff.shape[0]}",
                          field="returns")
    return max(1.0, float(optimal_block_length(diff).stationary))


@dataclass(frozen=True, eq=False)
class FamilyStatistics:
    """The statistics of one family (see the module docstring); ``best_index`` is a column of ``returns``."""

    n_trials: int
    n_obs: int
    best_index: int
    best_sharpe: float  # per bar
    best_sharpe_annual: float
    deflated: DeflatedSharpe
    pbo: PBO
    spa: SPA
    stepm: StepM
    block_length: float
    block_length_rule: str  # BLOCK_RULE, or "given" when the caller passed it

    def to_json(self) -> dict[str, Any]:
        return {"n_trials": self.n_trials, "n_obs": self.n_obs, "best_index": self.best_index,
                "best_sharpe": json_float(self.best_sharpe), "best_sharpe_annual": json_float(self.best_sharpe_annual),
                "deflated": self.deflated.to_json(), "pbo": self.pbo.to_json(), "spa": self.spa.to_json(),
                "stepm": self.stepm.to_json(), "block_length": json_float(self.block_length),
                "block_length_rule": self.block_length_rule}


def family_statistics(returns: np.ndarray, benchmark: np.ndarray, *, bars_per_year: float, seed: int,
                      reps: int = DEFAULT_REPS, n_blocks: int = DEFAULT_BLOCKS, alpha: float = DEFAULT_ALPHA,
                      block_length: float | None = None) -> FamilyStatistics:
    """DSR, PBO, SPA, Reality Check and StepM of the trials (columns) of ``returns`` against ``benchmark``."""
    matrix = as_matrix(returns, "returns")
    bench = as_series(benchmark, "benchmark")
    if matrix.shape[0] != bench.shape[0]:
        raise DataInvalid(f"returns have {matrix.shape[0]} rows but the benchmark has {bench.shape[0]}",
                          field="benchmark")
    if matrix.shape[1] < 1:
        raise ConfigInvalid("a family needs at least one trial", field="returns")
    sharpes = sharpe_per_bar(matrix)
    best = int(np.argmax(sharpes))
    deflated = deflated_sharpe(matrix[:, best], sharpes, bars_per_year)
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=n_blocks)
    rule = "given" if block_length is not None else BLOCK_RULE
    block = float(block_length) if block_length is not None else family_block_length(matrix[:, best], bench)
    spa, step = spa_and_stepm(bench, matrix, reps=reps, block_length=block, seed=seed, alpha=alpha)
    return FamilyStatistics(n_trials=int(matrix.shape[1]), n_obs=int(matrix.shape[0]), best_index=best,
                            best_sharpe=float(sharpes[best]), best_sharpe_annual=deflated.sharpe_annual,
                            deflated=deflated, pbo=pbo, spa=spa, stepm=step, block_length=block,
                            block_length_rule=rule)
