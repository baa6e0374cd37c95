"""Selection-bias statistics over a family of trials (a sweep or a study): what the best of many
configurations is worth once the search is accounted for.

* :mod:`.sharpe` — Probabilistic and Deflated Sharpe ratios, minimum track record length.
* :mod:`.pbo` — Probability of Backtest Overfitting by combinatorially symmetric cross-validation.
* :mod:`.spa` — Hansen's SPA, White's Reality Check and Romano–Wolf's StepM with a stationary bootstrap.
* :mod:`.family` — all of them over one family's return matrix (what a sweep report stores).

Pure compute (numpy in, frozen dataclasses with ``to_json()`` out); no database. Formulas and conventions are
in each module's docstring and in ``docs/selection.md``.
"""

from __future__ import annotations

from alphaforge.selection._arrays import sharpe_per_bar
from alphaforge.selection.family import FamilyStatistics, family_block_length, family_statistics
from alphaforge.selection.pbo import PBO, probability_of_backtest_overfitting
from alphaforge.selection.sharpe import (
    DeflatedSharpe,
    deflated_sharpe,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)
from alphaforge.selection.spa import (
    SPA,
    StepM,
    iter_stationary_bootstrap_indices,
    spa_and_stepm,
    stationary_bootstrap_indices,
    stepm,
    superior_predictive_ability,
)

__all__ = [
    "PBO", "SPA", "DeflatedSharpe", "FamilyStatistics", "StepM", "deflated_sharpe", "expected_max_sharpe",
    "family_block_length", "family_statistics",
    "iter_stationary_bootstrap_indices", "min_track_record_length", "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting", "sharpe_per_bar", "spa_and_stepm", "stationary_bootstrap_indices",
    "stepm", "superior_predictive_ability",
]
