"""Robustness validation of one run: permutation test, bootstrap CIs, walk-forward, CI-width policy.

:func:`run_validation` is the single entry point the pipeline calls, with the validated
``[validation]`` section (:class:`alphaforge.config.ValidationConfig`; each stage gets its own typed
sub-section, nothing is re-checked or re-defaulted here). It returns a :class:`ValidationOutcome`:

* ``row`` — exactly the ``validation`` table columns except ``run_hash``. Floats are finite or ``None`` and
  float32-representable (the database stores 4-byte REALs; the bootstrap endpoints are rounded there so that
  ``low <= high`` survives). ``permutation_pvalue`` is ``None`` when the permutation test is disabled
  (``n = 0``); the CI columns are ``None`` when the bootstrap is disabled (``n = 0``). ``bootstrap_fallback``
  is 0/1 and the method/block/jitter columns obey the coherence rule (simple ⇒ block and jitter NULL).
* ``payload`` — ``{"permutation", "bootstrap", "walk_forward", "ci_width", "verdict"}``; ``row["payload_json"]``
  is its canonical JSON.
* ``metrics`` — flat robustness metrics for the ``metrics`` table, phase ``"validation"`` (``None`` values
  are left out).
* ``walk_forward_spec`` — for ``runs.walk_forward_spec_json`` (``None`` when walk-forward is off).

Seeds: the permutation generator is ``rng_for(seed_root, "permutation")`` (passed on as
``component_seed(seed_root, "permutation")``); the bootstrap takes the run's ``bootstrap_seed`` (see
:mod:`.bootstrap`). Walk-forward is deterministic and draws nothing. Same seeds ⇒ identical distributions
(equal digests).

The overall ``verdict`` is the CI-width policy's (``passed`` | ``warned`` | ``failed``); the run completes
either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaforge.config import ValidationConfig
from alphaforge.enums import HeadlineMetric
from alphaforge.hashing import canonical_json, component_seed
from alphaforge.validation.ahead import PermutationsAhead
from alphaforge.validation.bootstrap import BootstrapResult, bootstrap_ci, choose_block_length
from alphaforge.validation.permutation import PermutationResult, permutation_test
from alphaforge.validation.policy import CIWidthVerdict, evaluate_ci_width
from alphaforge.validation.walk_forward import WalkForwardResult, walk_forward, walk_forward_spec

if TYPE_CHECKING:  # pandas only in annotations: a permutation worker never imports it (issue #13, memory)
    import pandas as pd

__all__ = [
    "BootstrapResult",
    "CIWidthVerdict",
    "PermutationResult",
    "ValidationOutcome",
    "WalkForwardResult",
    "bootstrap_ci",
    "choose_block_length",
    "evaluate_ci_width",
    "permutation_test",
    "run_validation",
    "walk_forward",
    "walk_forward_spec",
]

ROW_COLUMNS: tuple[str, ...] = (
    "payload_json", "permutation_pvalue", "bootstrap_sharpe_low", "bootstrap_sharpe_high", "bootstrap_cagr_low",
    "bootstrap_cagr_high", "bootstrap_method", "bootstrap_block_length", "bootstrap_jitter", "bootstrap_fallback",
)


@dataclass(frozen=True)
class ValidationOutcome:
    row: dict[str, Any]
    payload: dict[str, Any]
    metrics: dict[str, float | int | str]
    walk_forward_spec: dict[str, Any] | None


def _f32(x: float | None) -> float | None:
    return None if x is None else float(np.float32(x))


def run_validation(
    frame: pd.DataFrame,
    returns: np.ndarray,
    *,
    strategy: str,
    params: Mapping[str, Any],
    execution: Any,
    config: ValidationConfig,
    seed_root: int,
    bootstrap_seed: int,
    ahead: PermutationsAhead | None = None,
) -> ValidationOutcome:
    """Run every configured validation on one backtest (``returns`` = its per-bar strategy returns).

    ``execution`` needs its ``bars_per_year`` resolved (the pipeline's ``execution_params``). ``ahead``: this
    run's permutation test already started (:class:`~alphaforge.validation.ahead.PermutationsAhead`, same
    frame, strategy, execution and ``seed_root``): its result is used, not computed again.
    """
    bpy = execution.resolved_bars_per_year
    wf_cfg = config.walk_forward
    n_perm = config.permutation.n

    if ahead is not None and ahead.n != n_perm:
        raise ValueError(f"the permutation test started ahead has n={ahead.n}, the config says {n_perm}")
    # Permutations on worker processes leave this process waiting: it runs the bootstrap and walk-forward
    # meanwhile. Each stage draws from its own generator, so the results do not depend on the overlap.
    pending = ahead if ahead is not None else PermutationsAhead.start(frame, strategy, params, execution, n=n_perm,
                                                                      seed_root=seed_root)
    try:
        perm = None if pending is not None else permutation_test(  # in this process: first, as ever
            frame, strategy, params, execution, n=n_perm, seed=component_seed(seed_root, "permutation"))
        boot = bootstrap_ci(returns, config.bootstrap, seed=bootstrap_seed, bars_per_year=bpy)
        wf = None if wf_cfg is None else walk_forward(frame, strategy, params, execution, wf_cfg,
                                                      bars_per_year=bpy)
        if pending is not None:
            perm = pending.result()
    finally:
        if pending is not None and pending is not ahead:  # a test started here ends here (the caller's: theirs)
            pending.close()
    intervals = {}
    if boot.sharpe_low is not None and boot.sharpe_high is not None:
        intervals[HeadlineMetric.SHARPE.value] = (boot.sharpe_low, boot.sharpe_high)
    if boot.cagr_low is not None and boot.cagr_high is not None:
        intervals[HeadlineMetric.CAGR.value] = (boot.cagr_low, boot.cagr_high)
    verdict = evaluate_ci_width(intervals, config.ci_width)

    payload: dict[str, Any] = {
        "permutation": None if perm is None else perm.to_payload(),
        "bootstrap": boot.to_payload(),
        "walk_forward": None if wf is None else wf.to_payload(),
        "ci_width": verdict.to_payload(),
        "verdict": verdict.verdict,
    }
    row: dict[str, Any] = {
        "payload_json": canonical_json(payload),
        "permutation_pvalue": None if perm is None else _f32(perm.pvalue),
        "bootstrap_sharpe_low": boot.sharpe_low,
        "bootstrap_sharpe_high": boot.sharpe_high,
        "bootstrap_cagr_low": boot.cagr_low,
        "bootstrap_cagr_high": boot.cagr_high,
        "bootstrap_method": boot.method,
        "bootstrap_block_length": boot.block_length,
        "bootstrap_jitter": boot.jitter,
        "bootstrap_fallback": int(boot.fallback),
    }
    shared = ("permutation_pvalue", "bootstrap_sharpe_low", "bootstrap_sharpe_high", "bootstrap_cagr_low",
              "bootstrap_cagr_high", "bootstrap_method", "bootstrap_block_length", "bootstrap_fallback")
    flat: dict[str, float | int | str | None] = {
        **{key: row[key] for key in shared},
        "permutation_observed": None if perm is None else perm.observed,
        "permutation_null_mean": None if perm is None else perm.null_mean,
        "permutation_null_std": None if perm is None else perm.null_std,
        "wf_oos_sharpe": None if wf is None else wf.oos_sharpe,
        "wf_oos_return": None if wf is None else wf.oos_return,
        "wf_positive_fraction": None if wf is None else wf.positive_fraction,
        "wf_folds": None if wf is None else len(wf.folds),
        "ci_width_violations": len(verdict.violations),
        "validation_verdict": verdict.verdict,
    }
    metrics = {k: v for k, v in flat.items() if v is not None}
    return ValidationOutcome(row=row, payload=payload, metrics=metrics,
                             walk_forward_spec=None if wf_cfg is None else walk_forward_spec(wf_cfg))
