"""Robustness validation of one run: permutation test, bootstrap CIs, walk-forward, CI-width policy.

:func:`run_validation` is the single entry point the service calls. It returns a :class:`ValidationOutcome`:

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
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigInvalid
from alphaforge.hashing import canonical_json, component_seed
from alphaforge.validation.bootstrap import BootstrapResult, bootstrap_ci, choose_block_length
from alphaforge.validation.permutation import PermutationResult, permutation_test
from alphaforge.validation.policy import CIWidthVerdict, evaluate_ci_width
from alphaforge.validation.walk_forward import WalkForwardResult, walk_forward, walk_forward_spec

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


def _section(cfg: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    raw = cfg.get(name) or {}
    if not isinstance(raw, Mapping):
        raise ConfigInvalid(f"validation.{name} must be a table, got {type(raw).__name__}", field=f"validation.{name}")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigInvalid(f"validation.{name}: unknown keys {unknown} (allowed: {', '.join(keys)})",
                            field=f"validation.{name}")
    return dict(raw)


def _f32(x: float | None) -> float | None:
    return None if x is None else float(np.float32(x))


def run_validation(
    frame: pd.DataFrame,
    returns: np.ndarray,
    *,
    strategy: str,
    params: Mapping[str, Any],
    execution: Any,
    validation_cfg: Mapping[str, Any],
    seed_root: int,
    bootstrap_seed: int,
) -> ValidationOutcome:
    """Run every configured validation on one backtest (``returns`` = its per-bar strategy returns)."""
    cfg = validation_cfg or {}
    unknown = sorted(set(cfg) - {"permutation", "bootstrap", "walk_forward", "ci_width"})
    if unknown:
        raise ConfigInvalid(f"validation: unknown keys {unknown}", field="validation")
    bpy = float(execution.bars_per_year)
    perm_cfg = _section(cfg, "permutation", ("n", "statistic"))
    boot_cfg = _section(cfg, "bootstrap", ("n", "method", "ci", "jitter"))
    wf_raw = cfg.get("walk_forward")
    wf_cfg = None if wf_raw is None else _section(cfg, "walk_forward", ("folds", "mode", "grid"))

    perm = permutation_test(frame, strategy, params, execution, n=perm_cfg.get("n", 200),
                            seed=component_seed(seed_root, "permutation"),
                            statistic=perm_cfg.get("statistic", "sharpe"))
    boot = bootstrap_ci(returns, n=boot_cfg.get("n", 1000), method=boot_cfg.get("method", "hadj_bb"),
                        ci=boot_cfg.get("ci", 0.95), jitter=boot_cfg.get("jitter", 1), seed=bootstrap_seed,
                        bars_per_year=bpy)
    wf: WalkForwardResult | None = None
    if wf_cfg is not None:
        wf = walk_forward(frame, strategy, params, execution, folds=wf_cfg.get("folds", 5),
                          mode=wf_cfg.get("mode", "fixed"), grid=wf_cfg.get("grid") or {}, bars_per_year=bpy)
    intervals = {}
    if boot.sharpe_low is not None and boot.sharpe_high is not None:
        intervals["sharpe"] = (boot.sharpe_low, boot.sharpe_high)
    if boot.cagr_low is not None and boot.cagr_high is not None:
        intervals["cagr"] = (boot.cagr_low, boot.cagr_high)
    width_cfg = cfg.get("ci_width")
    if width_cfg and not intervals:  # bootstrap disabled: nothing to check
        verdict = CIWidthVerdict("passed", str(width_cfg.get("mode", "warn")))
    else:
        verdict = evaluate_ci_width(intervals, width_cfg)

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
