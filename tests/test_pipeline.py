"""The whole pipeline through the unit of work, on real databases."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import race_in_processes
from sqlalchemy import func, select

import alphaforge.runs.pipeline as pipeline_module
from alphaforge.backtest import ExecutionParams
from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, dataset_from_frame, load_ohlcv
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.models import Equity, Metric, PhaseMetric, Run, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.errors import DataInvalid
from alphaforge.runs.pipeline import PHASES, Pipeline, execution_params

N_BARS = 600


def small_config(**over: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "symbol": "SYN", "seed": 11,
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "execution": {"allow_short": True},
        "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 200},
                       "walk_forward": {"folds": 3, "mode": "optimize", "grid": {"fast": [5, 10]}}},
    }
    raw.update(over)
    return load_config(raw)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(N_BARS, seed=3))


def _pipeline(store: Store, tmp_path: Path) -> Pipeline:
    return Pipeline(store, cache_dir=tmp_path / "cache")


def _counts(store: Store, run_hash: str) -> dict[str, int]:
    out = {}
    with store.session() as s:
        for model in (Trade, Equity, Validation, Metric, PhaseMetric, RunError):
            out[model.__tablename__] = int(s.scalar(
                select(func.count()).select_from(model).where(model.run_hash == run_hash)  # type: ignore[attr-defined]
            ) or 0)
    return out


def test_run_records_every_phase_and_provenance(store: Store, tmp_path: Path, dataset: Dataset) -> None:
    outcome = _pipeline(store, tmp_path).run(small_config(), dataset)
    assert outcome.run.status == "completed" and not outcome.reused
    assert list(outcome.phases) == list(PHASES)
    with store.session() as s:
        rows = s.execute(select(PhaseMetric.phase, PhaseMetric.rows_processed, PhaseMetric.duration_ms)
                         .where(PhaseMetric.run_hash == outcome.run.run_hash)).all()
    assert all(r.rows_processed is not None and r.rows_processed >= N_BARS for r in rows)
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in rows)
    manifest = outcome.run.manifest
    assert set(manifest["versions"]) >= {"alphaforge", "python", "numpy", "pandas", "pyarrow", "sqlalchemy"}
    assert manifest["data_hash"] == dataset.data_hash and manifest["schema_version"] >= 1
    assert manifest["anomaly_counters"] == dataset.anomaly_counters
    assert manifest["seeds"]["seed_root"] == 11 == outcome.run.seed_root
    assert [f["column"] for f in manifest["features"]] == ["sma_5", "sma_20"]
    assert all(len(f["meta_hash"]) == 64 and len(f["digest"]) == 64 for f in manifest["features"])
    counts = _counts(store, outcome.run.run_hash)
    assert counts["equity"] == N_BARS and counts["trades"] == outcome.metrics["n_trades"] > 0
    assert counts["validation"] == 1 and counts["run_errors"] == 0
    assert store.read_metrics(outcome.run.run_hash, phase="load")["gaps"] == dataset.anomaly_counters["gaps"]
    assert outcome.run.walk_forward_spec == {"folds": 3, "mode": "optimize", "grid": {"fast": [5, 10]}}


def test_identical_resubmission_is_reused_without_recomputing(
    store: Store, tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _pipeline(store, tmp_path).run(small_config(), dataset)
    before = _counts(store, first.run.run_hash)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("recomputed on reuse")

    for name in ("run_backtest", "run_validation", "performance_metrics"):
        monkeypatch.setattr(pipeline_module, name, explode)
    again = _pipeline(store, tmp_path).run(small_config(), dataset)
    assert again.reused and again.run == first.run  # updated_at unchanged: nothing rewritten
    assert again.metrics == first.metrics and again.validation == first.validation
    assert _counts(store, first.run.run_hash) == before


def _fail_in(monkeypatch: pytest.MonkeyPatch, store: Store, where: str) -> None:
    if where == "validation":
        def boom(*a: Any, **k: Any) -> Any:
            raise DataInvalid("injected validation failure")
        monkeypatch.setattr(pipeline_module, "run_validation", boom)
    elif where == "persist":
        original = store.insert_equity

        def half(run_hash: str, frame: Any, **kwargs: Any) -> int:
            original(run_hash, frame, **kwargs)  # rows written, then the process "fails"
            raise RuntimeError("injected failure after the equity insert")
        monkeypatch.setattr(store, "insert_equity", half)


@pytest.mark.parametrize("where", ["validation", "persist"])
def test_failure_leaves_no_partial_results_and_retry_completes(
    store: Store, tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    with monkeypatch.context() as m:
        _fail_in(m, store, where)
        with pytest.raises((DataInvalid, RuntimeError)):
            _pipeline(store, tmp_path).run(small_config(), dataset)
    with store.session() as s:
        run = s.execute(select(Run)).scalar_one()
        run_hash, status = run.run_hash, run.status
        err = s.execute(select(RunError)).scalar_one()
    assert status == "failed" and err.phase == where
    counts = _counts(store, run_hash)
    assert counts["trades"] == counts["equity"] == counts["validation"] == counts["metrics"] == 0
    assert counts["phase_metrics"] >= 1
    retried = _pipeline(store, tmp_path).run(small_config(), dataset)
    assert retried.run.status == "completed" and not retried.reused and retried.run.run_hash == run_hash
    assert _counts(store, run_hash)["equity"] == N_BARS


def test_permutations_started_ahead_on_workers_stop_with_a_failed_run_and_match_the_serial_run(
    store: Store, tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With worker processes the pipeline starts the permutation test once the bars are loaded, beside the
    features and the backtest: a stage failing meanwhile fails the run at that stage and stops the test (no
    thread left behind); the completed run's validation is the one computed in process."""
    import threading

    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "2")
    with monkeypatch.context() as m:
        def boom(*a: Any, **k: Any) -> Any:
            raise DataInvalid("injected backtest failure")
        m.setattr(pipeline_module, "strategy_backtest", boom)
        with pytest.raises(DataInvalid, match="injected backtest failure"):
            _pipeline(store, tmp_path).run(small_config(validation={"permutation": {"n": 200_000}}), dataset)
    assert not [t for t in threading.enumerate() if t.name.startswith("alphaforge-permutations")]
    with store.session() as s:
        assert s.execute(select(RunError.phase)).scalar_one() == "backtest"
    ahead = _pipeline(store, tmp_path).run(small_config(), dataset)
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "1")
    serial = Pipeline(Store(f"sqlite:///{tmp_path / 'serial.db'}"), cache_dir=tmp_path / "c2").run(small_config(),
                                                                                                  dataset)
    assert ahead.run.status == serial.run.status == "completed"
    assert ahead.validation == serial.validation and ahead.metrics == serial.metrics


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest()


def test_identical_inputs_give_bit_identical_results_in_separate_databases(
    tmp_path: Path, dataset: Dataset
) -> None:
    results = []
    for name in ("a", "b"):
        store = Store(f"sqlite:///{tmp_path / name}.db")
        outcome = Pipeline(store, cache_dir=tmp_path / f"cache_{name}").run(small_config(), dataset)
        results.append((outcome.run.run_hash, _digest(store.read_trades(outcome.run.run_hash)),
                        _digest(store.read_equity(outcome.run.run_hash)), outcome.validation, outcome.metrics))
    assert results[0] == results[1]


def test_csv_and_parquet_of_the_same_bars_are_the_same_run(store: Store, tmp_path: Path) -> None:
    frame = synthetic_ohlcv(400, seed=5)
    frame.to_csv(tmp_path / "bars.csv", index=False)
    frame.to_parquet(tmp_path / "bars.parquet", index=False)
    config = small_config(validation={"permutation": {"n": 0}, "bootstrap": {"n": 50}})
    first = _pipeline(store, tmp_path).run(config, tmp_path / "bars.csv")
    second = _pipeline(store, tmp_path).run(config, tmp_path / "bars.parquet")
    assert second.reused and second.run.run_hash == first.run.run_hash
    assert load_ohlcv(tmp_path / "bars.csv").data_hash == load_ohlcv(tmp_path / "bars.parquet").data_hash


def test_a_different_config_or_data_is_a_different_run(store: Store, tmp_path: Path, dataset: Dataset) -> None:
    base = _pipeline(store, tmp_path).run(small_config(), dataset).run.run_hash
    other_config = _pipeline(store, tmp_path).run(small_config(seed=12), dataset).run.run_hash
    other_data = _pipeline(store, tmp_path).run(small_config(), dataset_from_frame(synthetic_ohlcv(N_BARS, 4)))
    assert len({base, other_config, other_data.run.run_hash}) == 3


def _run_in_process(url: str, cache: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[name-defined]
    try:
        store = Store(url)
        dataset = dataset_from_frame(synthetic_ohlcv(N_BARS, seed=3))
        barrier.wait(timeout=60)
        outcome = Pipeline(store, cache_dir=cache).run(small_config(), dataset)
        out.put((outcome.run.run_hash, outcome.run.status, outcome.reused))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_submitting_the_same_run_execute_it_once(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    results = race_in_processes(_run_in_process, [(db_url, str(tmp_path / "cache"))] * 2, timeout_s=240)
    assert all(isinstance(r, tuple) for r in results), results
    assert {r[0] for r in results} == {results[0][0]} and {r[1] for r in results} == {"completed"}
    assert sorted(r[2] for r in results) == [False, True]  # one executed, the other reused it
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
        executions = s.scalar(select(func.count()).select_from(PhaseMetric).where(PhaseMetric.phase == "backtest"))
    assert executions == 1


def test_extra_indicators_are_built_through_the_cache_and_recorded(
    store: Store, tmp_path: Path, dataset: Dataset
) -> None:
    config = small_config(features={"indicators": [{"name": "rsi"}, {"name": "atr"}, {"name": "volatility"},
                                                   {"name": "sma", "params": {"window": 5}}]})
    outcome = _pipeline(store, tmp_path).run(config, dataset)
    columns = [f["column"] for f in outcome.run.manifest["features"]]
    assert columns[:2] == ["sma_5", "sma_20"] and len(columns) == 5  # sma_5 is shared, built once
    assert all(not f["hit"] for f in outcome.run.manifest["features"])
    # another run on the same data and seed_root (the cache key includes seed_root): all cache hits
    other = small_config(execution={"allow_short": False}, features=config.to_dict()["features"])
    again = _pipeline(store, tmp_path).run(other, dataset)
    assert again.run.run_hash != outcome.run.run_hash
    assert all(f["hit"] for f in again.run.manifest["features"])


def test_execution_params_carry_the_configured_execution_and_infer_bars_per_year(dataset: Dataset) -> None:
    """The config's execution section *is* the engine's ExecutionParams (one type, one set of defaults); the
    pipeline only resolves bars_per_year, and every configured field reaches the engine."""
    config = small_config()
    assert type(config.execution) is ExecutionParams and config.execution == ExecutionParams(allow_short=True)
    assert ExecutionParams().bars_per_year is None  # unset: inferred from the bar spacing
    configured = {"initial_equity": 5e4, "fee_bps": 2.0, "slippage_bps": 3.0, "borrow_bps_annual": 40.0,
                  "allow_short": False, "bars_per_year": 365.0}
    assert asdict(execution_params(small_config(execution=configured), dataset)) == configured
    inferred = execution_params(config, dataset)
    assert inferred.bars_per_year == 252.0  # business-day bars: 252 a year, by the documented rule
    assert inferred == replace(config.execution, bars_per_year=inferred.bars_per_year)
