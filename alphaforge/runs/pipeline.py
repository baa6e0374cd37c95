"""The research pipeline through the unit of work.

``load → features → backtest → metrics → validation → persist → finalize``, each recorded as a
``phase_metrics`` row with ``rows_processed``. pending → running → completed, or failed with a ``run_errors``
row and no partial results. An identical resubmission returns the stored run (``reused=True``) without
recomputing anything — and, for a file whose exact bytes were loaded before, without loading it
(:mod:`alphaforge.runs.resubmit`); when another worker is executing the same run, this one waits for its outcome.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.backtest import BacktestResult, ExecutionParams, FeatureRequest, get_strategy, run_backtest
from alphaforge.config import RunConfig
from alphaforge.data import Dataset, load_ohlcv
from alphaforge.db.store import Store
from alphaforge.enums import PHASES as PHASES  # the phase names are defined once, in enums
from alphaforge.enums import RunStatus
from alphaforge.errors import RunAbandoned, error_class
from alphaforge.features.cache import FeatureCache
from alphaforge.metrics import infer_bars_per_year, performance_metrics
from alphaforge.runs.liveness import Heartbeat, worker_id
from alphaforge.runs.liveness import heartbeat_interval_s as default_heartbeat_interval_s
from alphaforge.runs.provenance import new_run
from alphaforge.runs.queries import RunOutcome, default_cache_dir, stored_outcome
from alphaforge.runs.resubmit import completed_outcome, known_data_hash, remember_data_file
from alphaforge.runs.service import PhaseHandle, RunService, epoch_ms
from alphaforge.validation import ValidationOutcome, run_validation
from alphaforge.validation.ahead import PermutationsAhead
from alphaforge.validation.permutation import prestart_workers

ProgressFn = Callable[[str, str], None]  # (phase, "start" | "end")


def execution_params(config: RunConfig, dataset: Dataset,
                     inferred: Callable[[], float] | None = None) -> ExecutionParams:
    """The configured execution with ``bars_per_year`` resolved: an explicit ``execution.bars_per_year`` wins,
    else it is inferred from the data's calendar (:func:`alphaforge.backtest.calendar.infer_bars_per_year`;
    ConfigInvalid asking for the explicit value on data too short to tell). ``inferred``: that inference for
    ``dataset``, kept by a caller running many configs on it (called only when needed)."""
    e = config.execution
    if e.bars_per_year is not None:
        return e
    return replace(e, bars_per_year=inferred() if inferred is not None else dataset_bars_per_year(dataset))


def dataset_bars_per_year(dataset: Dataset) -> float:
    """Bars per year inferred from the dataset's calendar (see :func:`execution_params`)."""
    return infer_bars_per_year(dataset.frame["ts"].to_numpy())


def strategy_backtest(config: RunConfig, frame: pd.DataFrame, features: Mapping[str, np.ndarray],
                      execution: ExecutionParams) -> BacktestResult:
    """The backtest stage of a run (the pipeline and the batched sweep path alike): the strategy's exposure from
    its features and the bar prices, then the engine."""
    exposure = get_strategy(config.strategy.name).exposure(
        {**features, **{c: frame[c].to_numpy() for c in ("open", "high", "low", "close")}},
        config.strategy.params, execution.allow_short,
    )
    return run_backtest(frame, exposure, execution)


def validate_run(config: RunConfig, frame: pd.DataFrame, result: BacktestResult, execution: ExecutionParams, *,
                 seed_root: int, bootstrap_seed: int, ahead: PermutationsAhead | None = None) -> ValidationOutcome:
    """The validation stage of a run (the pipeline and the batched sweep path alike); ``ahead``: its permutation
    test, started early (:func:`permutations_ahead`)."""
    return run_validation(
        frame, result.returns, strategy=config.strategy.name, params=config.strategy.params,
        execution=execution, config=config.validation, seed_root=seed_root, bootstrap_seed=bootstrap_seed,
        ahead=ahead,
    )


def permutations_ahead(config: RunConfig, frame: pd.DataFrame, execution: ExecutionParams,
                       seed_root: int) -> PermutationsAhead | nullcontext[None]:
    """The run's permutation test started now, as a context (closed, i.e. stopped, when the run leaves it), when
    it runs on worker processes; else a context of ``None`` (validation computes it in this process)."""
    ahead = PermutationsAhead.start(frame, config.strategy.name, config.strategy.params, execution,
                                    n=config.validation.permutation.n, seed_root=seed_root)
    return nullcontext() if ahead is None else ahead


def bars_per_year_source(config: RunConfig) -> str:
    """``"configured"`` when ``execution.bars_per_year`` is set, else ``"inferred"`` (from the calendar)."""
    return "inferred" if config.execution.bars_per_year is None else "configured"


def completed_manifest(manifest: Mapping[str, Any], features: list[dict[str, Any]], config: RunConfig,
                       execution: ExecutionParams) -> dict[str, Any]:
    """The manifest a completed run stores (the pipeline and the batched sweep path alike): the initial one plus
    the feature-cache entries used and the bars_per_year the run used, with its source."""
    return {**manifest, "features": features, "bars_per_year": execution.resolved_bars_per_year,
            "bars_per_year_source": bars_per_year_source(config)}


def metric_groups(dataset: Dataset, execution: ExecutionParams, performance: Mapping[str, Any],
                  validation: ValidationOutcome) -> dict[str, Mapping[str, Any]]:
    """The ``metrics`` rows a completed run stores, by phase (the pipeline and the batched sweep path alike)."""
    return {
        "backtest": performance,
        "validation": validation.metrics,
        "load": {**dataset.anomaly_counters, "n_bars": dataset.n_bars,
                 "bars_per_year": execution.resolved_bars_per_year},
    }


class Pipeline:
    """Runs configurations against datasets in one Store."""

    def __init__(self, store: Store, *, cache_dir: str | os.PathLike[str] | None = None,
                 progress: ProgressFn | None = None, heartbeat_interval_s: float | None = None) -> None:
        self.store = store
        if heartbeat_interval_s is None:  # this also refuses a bad $ALPHAFORGE_STALE_AFTER_S before any write
            heartbeat_interval_s = default_heartbeat_interval_s()
        self.heartbeat_interval_s = heartbeat_interval_s
        self.service = RunService(store)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(store)
        self.progress = progress or (lambda phase, event: None)

    def run(self, config: RunConfig, data: Dataset | str | os.PathLike[str]) -> RunOutcome:
        started = epoch_ms()
        self.progress("load", "start")
        if not isinstance(data, Dataset):
            # an identical resubmission of a file whose bytes were loaded before: answered without loading them
            data_hash = known_data_hash(self.store, data)
            reused = None if data_hash is None else completed_outcome(self.store, config.to_dict(), data_hash)
            if reused is not None:
                self.progress("load", "end")
                return reused
        dataset = data if isinstance(data, Dataset) else load_ohlcv(data)
        loaded = epoch_ms()
        self.progress("load", "end")
        outcome = self._submit(config, dataset, started, loaded)
        # the file's data_hash is recorded once its run stands (a failed input leaves no row behind)
        remember_data_file(self.store, dataset)
        return outcome

    def _submit(self, config: RunConfig, dataset: Dataset, started: int, loaded: int) -> RunOutcome:
        """The run of ``config`` on the loaded ``dataset``: the stored one, or executed here (or waited for)."""
        cache = FeatureCache(self.cache_dir, self.store)  # an unusable cache dir fails before any write
        submission = self.service.create(new_run(config, dataset))
        run_hash = submission.run.run_hash
        while True:
            run = self.service.get(run_hash)
            if run.status == RunStatus.COMPLETED:
                return stored_outcome(self.store, run_hash, reused=True)
            if self.service.is_stale(run):
                self.service.recover(run_hash)  # its worker died: fail it (RUN_ABANDONED), then retry here
            if self.service.claim(run_hash):
                break
            if self.service.wait_for(run_hash).status == RunStatus.COMPLETED:
                return stored_outcome(self.store, run_hash, reused=True)
            # It failed in the worker we waited for. Only an abandoned attempt (its worker died) is retried
            # here; a real failure is the answer for every waiter (resubmit later to retry it).
            last = self.service.last_error(run_hash)
            if last is None or last[0] != RunAbandoned.error_code:
                code, message = last or ("INTERNAL", "failed without an error record")
                raise error_class(code)(f"run {run_hash[:12]} failed in another worker: [{code}] {message}")
        # started now, they boot on the idle core while this one loads features and backtests
        self.store.prepare_bulk(dataset.n_bars)  # the bulk helper process of a large run
        prestart_workers(config.validation.permutation.n, dataset.n_bars)  # the permutation workers' fork server
        self.service.record_phase(run_hash, "load", started, max(loaded, started), dataset.n_bars,
                                  {"anomaly_counters": dataset.anomaly_counters})
        with Heartbeat(self.service.beat, run_hash, self.heartbeat_interval_s):
            self._execute(config, dataset, run_hash, cache)
        return stored_outcome(self.store, run_hash, reused=False)

    def _execute(self, config: RunConfig, dataset: Dataset, run_hash: str, cache: FeatureCache) -> None:
        service, frame, n = self.service, dataset.frame, dataset.n_bars
        current = "features"
        try:
            run = service.get(run_hash)
            execution = execution_params(config, dataset)
            # the permutation test (on worker processes) starts now, beside features, backtest and metrics; a
            # failure below stops it on the way out
            with permutations_ahead(config, frame, execution, run.seed_root) as ahead:
                with self._phase(run_hash, "features", n) as ph:
                    features, used = self._features(cache, config, dataset, run.seed_root)
                    ph.extra["features"] = used
                    ph.extra["cache"] = dict(cache.stats)
                current = "backtest"
                with self._phase(run_hash, "backtest", n) as ph:
                    result = strategy_backtest(config, frame, features, execution)
                    ph.extra["n_trades"] = len(result.trades)
                current = "metrics"
                with self._phase(run_hash, "metrics", n):
                    performance = performance_metrics(result, execution.resolved_bars_per_year)
                current = "validation"
                with ThreadPoolExecutor(1, thread_name_prefix="alphaforge-persist") as side:
                    # The trades and equity rows depend on the backtest alone: they are written (fenced, as
                    # ever) while validation computes. Leaving this block waits for them, also when validation
                    # fails, so that a failure's clean-up never races them.
                    rows = side.submit(self._write_rows, run_hash, result)
                    with self._phase(run_hash, "validation", n):
                        validation = validate_run(config, frame, result, execution, seed_root=run.seed_root,
                                                  bootstrap_seed=run.bootstrap_seed, ahead=ahead)
            current = "persist"
            with self._phase(run_hash, "persist", len(result.trades) + n):
                rows.result()  # re-raises the rows' write error, if any
                self._persist(run_hash, dataset, execution, performance, validation)
            current = "finalize"
            with self._phase(run_hash, "finalize", n):
                manifest = completed_manifest(run.manifest, used, config, execution)
                service.complete(run_hash, data_hash=dataset.data_hash, manifest=manifest,
                                 expected_equity_rows=n)
        except BaseException as exc:
            service.fail(run_hash, exc, phase=current)
            raise

    @contextmanager
    def _phase(self, run_hash: str, name: str, rows: int | None) -> Iterator[PhaseHandle]:
        self.progress(name, "start")
        try:
            self.service.ensure_owner(run_hash)  # fence: a recovered (zombie) worker stops here
            with self.service.phase(run_hash, name, rows) as handle:
                yield handle
        finally:
            self.progress(name, "end")

    @staticmethod
    def _features(cache: FeatureCache, config: RunConfig, dataset: Dataset,
                  seed_root: int) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        features: dict[str, np.ndarray] = {}
        used: list[dict[str, Any]] = []
        requests = get_strategy(config.strategy.name).features(config.strategy.params)
        extra = [FeatureRequest(i["name"], i["params"]) for i in config.features.indicators]
        for req in requests + [r for r in extra if r not in requests]:
            table, entry = cache.get_or_build(
                dataset_hash=dataset.data_hash, frame=dataset.frame, indicator=req.indicator,
                params=req.params, seed_root=seed_root, columns=[req.column],
            )
            features[req.column] = table[req.column].to_numpy()
            used.append({"indicator": req.indicator, "params": req.params, "column": req.column,
                         "meta_hash": entry.meta_hash, "digest": entry.digest, "hit": entry.hit,
                         "rebuilt_corrupt": entry.rebuilt_corrupt})
        return features, used

    def _write_rows(self, run_hash: str, result: BacktestResult) -> None:
        """The run's trades and equity rows (each write fenced inside its own transaction: a worker that lost
        the run writes nothing)."""
        self.store.insert_trades(run_hash, result.trades, owner=worker_id())
        self.store.insert_equity(run_hash, result.equity, owner=worker_id())

    def _persist(self, run_hash: str, dataset: Dataset, execution: ExecutionParams,
                 performance: Mapping[str, Any], validation: ValidationOutcome) -> None:
        store = self.store
        with store.session() as s:
            self.service.hold_ownership(s, run_hash)
            store.write_validation(run_hash, validation.row, session=s)
            for phase, metrics in metric_groups(dataset, execution, performance, validation).items():
                store.write_metrics(run_hash, metrics, phase=phase, session=s)

