"""Validation orchestration: row/payload/metrics shape, determinism, CI-width policy, and the DB CHECKs."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert
from sqlalchemy.exc import IntegrityError

from alphaforge.backtest.engine import ExecutionParams, strategy_returns
from alphaforge.config import CIWidthConfig, ValidationConfig, load_config
from alphaforge.db.models import Base, Run, Validation
from alphaforge.enums import CIWidthMode
from alphaforge.hashing import canonical_json, component_seed, sha256_hex
from alphaforge.validation import ROW_COLUMNS, ValidationOutcome, run_validation
from alphaforge.validation.policy import evaluate_ci_width
from alphaforge.validation.synthetic import ohlcv_frame

EXEC = ExecutionParams(fee_bps=1.0, slippage_bps=0.5, allow_short=True, bars_per_year=252.0)
PARAMS = {"fast": 5, "slow": 20}
CFG: dict[str, Any] = {
    "permutation": {"n": 20},
    "bootstrap": {"n": 200, "method": "hadj_bb", "ci": 0.95, "jitter": 1},
    "walk_forward": {"folds": 3, "mode": "optimize", "grid": {"fast": [3, 5], "slow": [10, 20]}},
    "ci_width": {"sharpe": 50.0, "cagr": 50.0, "mode": "warn"},
}


def validation_config(raw: dict[str, Any], strategy: str = "sma_cross") -> ValidationConfig:
    """The typed ``[validation]`` section, parsed and validated the one way: by :func:`load_config`."""
    params = PARAMS if strategy == "sma_cross" else {}
    return load_config({"symbol": "TEST", "strategy": {"name": strategy, "params": params},
                        "validation": raw}).validation


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ohlcv_frame(800, phi=0.2, seed=5, mu=2e-4)


@pytest.fixture(scope="module")
def returns(frame: pd.DataFrame) -> np.ndarray:
    return strategy_returns(frame, "sma_cross", PARAMS, EXEC)


def _run(frame: pd.DataFrame, returns: np.ndarray, cfg: dict[str, Any] | None = None, seed_root: int = 7,
         bootstrap_seed: int = 11) -> ValidationOutcome:
    return run_validation(frame, returns, strategy="sma_cross", params=PARAMS, execution=EXEC,
                          config=validation_config(CFG if cfg is None else cfg), seed_root=seed_root,
                          bootstrap_seed=bootstrap_seed)


# ---------------------------------------------------------------- CI-width policy


def test_policy_verdicts_in_both_modes() -> None:
    intervals = {"sharpe": (-0.5, 1.5), "cagr": (-0.125, 0.25)}
    ok = evaluate_ci_width(intervals, CIWidthConfig({"sharpe": 2.0, "cagr": 0.375}, CIWidthMode.STRICT))
    assert ok.verdict == "passed" and ok.violations == ()  # a width equal to its limit passes
    warned = evaluate_ci_width(intervals, CIWidthConfig({"cagr": 0.1, "sharpe": 1.0}, CIWidthMode.WARN))
    assert warned.verdict == "warned"
    assert [(v.metric, v.limit) for v in warned.violations] == [("sharpe", 1.0), ("cagr", 0.1)]
    assert warned.violations[0].width == pytest.approx(2.0)
    failed = evaluate_ci_width(intervals, CIWidthConfig({"cagr": 0.1}, CIWidthMode.STRICT))
    assert failed.verdict == "failed" and [v.metric for v in failed.violations] == ["cagr"]
    assert failed.to_payload()["violations"][0]["metric"] == "cagr"


# ---------------------------------------------------------------- orchestration


def test_outcome_shape(frame: pd.DataFrame, returns: np.ndarray) -> None:
    out = _run(frame, returns)
    assert tuple(out.row) == ROW_COLUMNS
    assert out.row["payload_json"] == canonical_json(out.payload)
    assert json.loads(out.row["payload_json"]) == json.loads(canonical_json(out.payload))
    assert set(out.payload) == {"permutation", "bootstrap", "walk_forward", "ci_width", "verdict"}
    for key, value in out.row.items():
        if isinstance(value, float):
            assert math.isfinite(value) and float(np.float32(value)) == value, key
    assert 0 < out.row["permutation_pvalue"] <= 1
    assert out.row["bootstrap_sharpe_low"] <= out.row["bootstrap_sharpe_high"]
    assert out.row["bootstrap_fallback"] in (0, 1)
    assert out.payload["verdict"] == out.payload["ci_width"]["verdict"] == "passed"
    assert all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in out.metrics.values())
    for key in ("permutation_pvalue", "bootstrap_sharpe_low", "bootstrap_cagr_high", "wf_oos_sharpe",
                "wf_positive_fraction", "validation_verdict"):
        assert key in out.metrics
    assert out.metrics["wf_folds"] == 3 and len(out.payload["walk_forward"]["folds"]) == 3
    assert out.walk_forward_spec is not None and out.walk_forward_spec["mode"] == "optimize"


def test_same_seeds_identical_other_seeds_different(frame: pd.DataFrame, returns: np.ndarray) -> None:
    cfg = {**CFG, "walk_forward": None}
    a, b = _run(frame, returns, cfg), _run(frame, returns, cfg)
    assert a == b
    c = _run(frame, returns, cfg, seed_root=8)
    assert c.payload["permutation"]["null_digest"] != a.payload["permutation"]["null_digest"]
    assert c.payload["bootstrap"] == a.payload["bootstrap"]  # the bootstrap follows bootstrap_seed only
    d = _run(frame, returns, cfg, bootstrap_seed=12)
    assert d.payload["bootstrap"]["sharpe_digest"] != a.payload["bootstrap"]["sharpe_digest"]
    assert d.payload["bootstrap"]["cagr_digest"] != a.payload["bootstrap"]["cagr_digest"]
    assert d.payload["permutation"] == a.payload["permutation"]
    assert a.payload["permutation"]["n"] == 20
    # the permutation seed is the documented component seed
    from alphaforge.validation.permutation import permutation_test

    direct = permutation_test(frame, "sma_cross", PARAMS, EXEC, n=20, seed=component_seed(7, "permutation"))
    assert direct is not None and direct.to_payload() == a.payload["permutation"]


def test_permutations_on_workers_overlapping_the_bootstrap_give_the_same_outcome(
        frame: pd.DataFrame, returns: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """With worker processes the permutations run beside the bootstrap and walk-forward: same outcome."""
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "1")
    serial = _run(frame, returns)
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "2")
    overlapped = _run(frame, returns)
    assert overlapped == serial
    assert serial.payload["walk_forward"] is not None and serial.payload["bootstrap"]["sharpe_digest"]


def test_permutations_started_ahead_give_the_same_outcome_and_stop_with_the_run(
        frame: pd.DataFrame, returns: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline starts the permutation test (on workers) before features and backtest: run_validation then
    uses its result, which is the one it would compute; a run that fails first stops it (it never finishes its
    permutations) and leaves no thread behind."""
    import threading

    from alphaforge.validation.ahead import PermutationsAhead
    from alphaforge.validation.permutation import PermutationsStopped

    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "1")
    assert PermutationsAhead.start(frame, "sma_cross", PARAMS, EXEC, n=20, seed_root=7) is None  # in process
    serial = _run(frame, returns)
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "2")
    with PermutationsAhead.start(frame, "sma_cross", PARAMS, EXEC, n=20, seed_root=7) as ahead:
        assert ahead is not None
        early = run_validation(frame, returns, strategy="sma_cross", params=PARAMS, execution=EXEC,
                               config=validation_config(CFG), seed_root=7, bootstrap_seed=11, ahead=ahead)
    assert early == serial
    with pytest.raises(ValueError, match="n=20"):
        run_validation(frame, returns, strategy="sma_cross", params=PARAMS, execution=EXEC,
                       config=validation_config({**CFG, "permutation": {"n": 30}}), seed_root=7,
                       bootstrap_seed=11, ahead=ahead)
    ahead = PermutationsAhead(frame, "sma_cross", PARAMS, EXEC, n=5_000, seed_root=7)
    ahead.close()  # the run failed: stopped at the next batch, the thread joined
    with pytest.raises(PermutationsStopped):
        ahead.result()
    assert not [t for t in threading.enumerate() if t.name.startswith("alphaforge-permutations")]


def test_disabled_parts_give_none(frame: pd.DataFrame, returns: np.ndarray) -> None:
    out = _run(frame, returns, {"permutation": {"n": 0}, "bootstrap": {"n": 0}, "walk_forward": None,
                                "ci_width": {"sharpe": 0.001, "mode": "strict"}})
    assert out.row["permutation_pvalue"] is None and out.payload["permutation"] is None
    assert out.row["bootstrap_sharpe_low"] is None and out.row["bootstrap_cagr_high"] is None
    assert out.payload["walk_forward"] is None and out.walk_forward_spec is None
    assert out.payload["verdict"] == "passed"  # nothing to check without a bootstrap
    assert "permutation_pvalue" not in out.metrics and "wf_oos_sharpe" not in out.metrics
    if out.row["bootstrap_method"] == "simple":
        assert out.row["bootstrap_block_length"] is None and out.row["bootstrap_jitter"] is None


@pytest.mark.parametrize(("mode", "verdict"), [("warn", "warned"), ("strict", "failed")])
def test_ci_width_policy_in_the_outcome(frame: pd.DataFrame, returns: np.ndarray, mode: str, verdict: str) -> None:
    cfg = {**CFG, "walk_forward": None, "permutation": {"n": 0}, "ci_width": {"sharpe": 0.01, "mode": mode}}
    out = _run(frame, returns, cfg)
    assert out.payload["verdict"] == verdict == out.metrics["validation_verdict"]
    (violation,) = out.payload["ci_width"]["violations"]
    assert violation["metric"] == "sharpe" and violation["limit"] == 0.01
    assert violation["width"] == pytest.approx(out.row["bootstrap_sharpe_high"] - out.row["bootstrap_sharpe_low"])


def test_takes_the_typed_validation_section(frame: pd.DataFrame, returns: np.ndarray) -> None:
    out = _run(frame, returns, {"permutation": {"n": 5}, "bootstrap": {"n": 50},
                                "walk_forward": {"folds": 2, "mode": "optimize", "grid": {"fast": [3, 5]}},
                                "ci_width": {"sharpe": 1.0, "mode": "strict"}})
    assert out.payload["ci_width"]["limits"] == {"sharpe": 1.0} and out.payload["ci_width"]["mode"] == "strict"
    assert out.payload["bootstrap"]["n"] == 50 and out.payload["permutation"]["n"] == 5
    assert out.walk_forward_spec is not None and out.walk_forward_spec["grid"] == {"fast": [3, 5]}


# ---------------------------------------------------------------- the database CHECK constraints


_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def engine() -> Any:
    eng = create_engine("sqlite://")
    Base.metadata.create_all(eng)
    return eng


def _insert(engine: Any, row: dict[str, Any], run_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Run).values(
            run_hash=run_hash, created_at=0, updated_at=0, status="running", config_json="{}",
            manifest_json="{}", data_hash="0" * 64, seed_root=1, db_version=1, bootstrap_seed=1))
        conn.execute(insert(Validation).values(run_hash=run_hash, **row))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(2, 300),
    phi=st.sampled_from([0.0, 0.4, 0.9]),
    method=st.sampled_from(["hadj_bb", "simple"]),
    jitter=st.integers(0, 2),
    trials=st.sampled_from([0, 1, 25]),
    seed=st.integers(0, 2**32 - 1),
)
def test_rows_always_pass_the_database_checks(engine: Any, n: int, phi: float, method: str, jitter: int,
                                              trials: int, seed: int) -> None:
    from alphaforge.validation.synthetic import ar1_returns

    r = ar1_returns(n, phi, seed=seed, mu=1e-4)
    cfg = {"permutation": {"n": 0}, "bootstrap": {"n": trials, "method": method, "jitter": jitter},
           "ci_width": {"sharpe": 1.0}}
    out = run_validation(pd.DataFrame(), r, strategy="buy_and_hold", params={}, execution=EXEC,
                         config=validation_config(cfg, "buy_and_hold"), seed_root=1, bootstrap_seed=seed)
    _insert(engine, out.row, sha256_hex(f"{next(_COUNTER)}"))


def test_an_incoherent_row_is_refused(engine: Any, frame: pd.DataFrame, returns: np.ndarray) -> None:
    out = _run(frame, returns, {"permutation": {"n": 0}, "bootstrap": {"n": 10, "method": "simple"}})
    _insert(engine, out.row, "b" * 64)
    with pytest.raises(IntegrityError):
        _insert(engine, {**out.row, "bootstrap_block_length": 5}, "c" * 64)
