"""Batched execution of sweep points: many runs of one dataset in one worker, sharing everything they can.

A sweep's points differ only in their config; what the single-run pipeline pays per run (load and hash the
data, open the Store, build or read each indicator column, a transaction per phase row, per transition and
per metric group) is paid here once per worker or once per batch:

* the dataset is loaded and hashed once per worker process (:func:`worker_context`), and must hash to the
  ``data_hash`` the sweep planned with;
* each indicator column is obtained once per worker (from the feature cache, built there if missing) and
  reused by every point that requests it (:class:`SharedFeatures`);
* the runs of a batch are created in one transaction, claimed in one conditional ``UPDATE`` and kept alive
  by one heartbeat thread (one ``UPDATE`` per beat for the whole batch);
* the equity curves of the batch's points go through the Store's bulk path in **one** call
  (:meth:`~alphaforge.db.store.Store.insert_equity_runs`: one transaction that checks the ownership fence of
  every run, then ingests all the rows -- on a SQLite file one write-lock round trip per batch, not per
  point; if that call fails, the curves are written point by point so that a point fails alone), then the
  batch's trades, validation rows, metrics, phase rows and completions are written in **one** transaction
  that holds the ownership fence of every run in it.

Every stored row is the one ``Pipeline.run`` would store for the same config and data (same ``run_hash``,
trades, equity, metrics, validation row, run row; the manifest's per-feature ``hit`` flag says whether the
column came from a cache file or memory, as it does for a single run). ``phase_metrics`` rows are written with
the same phases, ``rows_processed`` and extra keys; their times are the batch's.

A point whose run another worker is executing is handed to ``Pipeline.run`` (which waits for it); a point
that fails is failed alone (``RunService.fail``: error row, partial rows removed) and the batch goes on.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from alphaforge.backtest import get_strategy
from alphaforge.backtest.strategies import FeatureRequest
from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, load_ohlcv
from alphaforge.db.bulk_frames import normalize, to_arrow
from alphaforge.db.clock import db_now_ms
from alphaforge.db.kv import encode_value
from alphaforge.db.models import Equity, Metric, PhaseMetric, Run, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.db.upsert import insert_ignore, upsert
from alphaforge.enums import RunStatus
from alphaforge.errors import (
    AlphaForgeError,
    IllegalTransition,
    IntegrityMismatch,
    RunAbandoned,
    error_code_of,
)
from alphaforge.features.cache import FeatureCache
from alphaforge.hashing import canonical_json, hash_obj
from alphaforge.metrics import performance_metrics
from alphaforge.numeric import finite_number
from alphaforge.runs.liveness import Heartbeat, heartbeat_interval_s, worker_id
from alphaforge.runs.pipeline import (
    Pipeline,
    completed_manifest,
    dataset_bars_per_year,
    execution_params,
    metric_groups,
    strategy_backtest,
    validate_run,
)
from alphaforge.runs.provenance import NewRun, new_run
from alphaforge.runs.queries import default_cache_dir
from alphaforge.runs.service import RunService, epoch_ms, pending_row

Point = tuple[int, dict[str, Any], str]  # (grid index, raw config, planned run_hash)


def failure_text(exc: BaseException) -> str:
    """``CODE: message`` on one line: how a sweep reports a point that failed."""
    message = exc.message if isinstance(exc, AlphaForgeError) else f"{type(exc).__name__}: {exc}"
    return f"{error_code_of(exc)}: {' '.join(message.split())}"


def point_fields(run_hash: str, status: str, reused: bool, performance: Mapping[str, Any] | None,
                 payload: Mapping[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """The plain-data summary of a point a sweep keeps (what :class:`~alphaforge.runs.sweep.PointResult` holds)."""
    wf = (payload or {}).get("walk_forward") or {}
    return {"run_hash": run_hash, "status": status, "reused": reused,
            "sharpe": finite_number((performance or {}).get("sharpe")),
            "oos_sharpe": finite_number(wf.get("oos_sharpe")), "error": error}


def trade_records(run_hash: str, trades: Any) -> list[dict[str, Any]]:
    """A run's trades as the rows the bulk paths store (validated and typed by ``bulk_frames``: ``seq`` in ts
    order, float32 values, NULL for a NaN price), for one Core ``INSERT`` with the rest of the batch: a few
    hundred rows a run do not pay a bulk call (and its transaction) each."""
    table = to_arrow(normalize("trades", trades))
    names = table.column_names
    columns = [table.column(name).to_pylist() for name in names]  # exact: float32 -> Python float, NULL -> None
    return [{"run_hash": run_hash, **dict(zip(names, row, strict=True))} for row in zip(*columns, strict=True)]


def insert_rows(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """One ``INSERT`` of many plain rows through the driver's ``executemany``: the statement is compiled once
    for the connection's dialect and the rows are handed over as parameter tuples (or dicts, for a named
    paramstyle), without SQLAlchemy's per-row parameter processing (thousands of rows per batch). The values
    must already be the column's Python types (they are: ints, floats, str, None)."""
    if not rows:
        return
    columns = list(rows[0])
    compiled = insert(model).values({c: bindparam(c) for c in columns}).compile(dialect=conn.dialect)
    if compiled.positiontup is not None:
        order = list(compiled.positiontup)
        params: Any = [tuple(row[c] for c in order) for row in rows]
    else:
        params = rows
    conn.exec_driver_sql(str(compiled), params)


# --------------------------------------------------------------------------------------------- features


@dataclass
class SharedFeatures:
    """Indicator columns of one dataset, each taken from the feature cache once and then served from memory.

    The key is the cache key minus the dataset (fixed here): indicator, resolved params and ``seed_root``, so
    a point gets exactly the column (and the ``meta_hash``/``digest``) a single run would get.
    """

    cache: FeatureCache
    dataset: Dataset
    _columns: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)

    def __len__(self) -> int:
        """The number of distinct columns held."""
        return len(self._columns)

    def get(self, requests: Sequence[FeatureRequest], seed_root: int) -> tuple[dict[str, np.ndarray],
                                                                                list[dict[str, Any]],
                                                                                dict[str, int]]:
        """``(columns by name, the manifest's feature entries, cache stats of this point)``."""
        features: dict[str, np.ndarray] = {}
        used: list[dict[str, Any]] = []
        stats = {"hits": 0, "misses": 0, "cache_corrupt": 0}
        for req in requests:
            key = hash_obj([req.indicator, req.params, seed_root])
            known = self._columns.get(key)
            if known is None:
                before = dict(self.cache.stats)
                table, entry = self.cache.get_or_build(
                    dataset_hash=self.dataset.data_hash, frame=self.dataset.frame, indicator=req.indicator,
                    params=req.params, seed_root=seed_root, columns=[req.column],
                )
                for k in stats:
                    stats[k] += self.cache.stats[k] - before[k]
                record = {"indicator": req.indicator, "params": req.params, "column": req.column,
                          "meta_hash": entry.meta_hash, "digest": entry.digest, "hit": entry.hit,
                          "rebuilt_corrupt": entry.rebuilt_corrupt}
                known = self._columns[key] = (table[req.column].to_numpy(), record)
                used.append(record)
            else:
                stats["hits"] += 1  # served from memory: nothing computed, as a cache hit
                used.append({**known[1], "hit": True, "rebuilt_corrupt": False})
            features[req.column] = known[0]
        return features, used, stats


def feature_cache(store: Store, cache_dir: str | None) -> FeatureCache:
    """The feature cache of a sweep's points: ``cache_dir``, else the Store's default directory."""
    return FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir(store), store)


def build_features(store: Store, dataset: Dataset, configs: Sequence[RunConfig], cache_dir: str | None) -> int:
    """Put in the feature cache every indicator column ``configs`` request on ``dataset``, each built once (or
    found there); the number of distinct columns. Run by the sweep's caller while its workers start: the
    workers then read each column from the cache instead of computing it again in every worker, and none of
    them waits for the database's write lock (held by the other workers' bulk writes) to record a column it
    built in the middle of a batch. Best effort: a column that cannot be built here is left to the points
    that request it, which fail alone as single runs would."""
    try:
        features = SharedFeatures(feature_cache(store, cache_dir), dataset)
    except Exception:  # noqa: BLE001 - e.g. an unusable cache directory: every point reports it
        return 0
    for config in configs:
        try:
            features.get(feature_requests(config), config.seed_root)
        except Exception:  # noqa: BLE001 - left to the point (see above)
            continue
    return len(features)


def feature_requests(config: RunConfig) -> list[FeatureRequest]:
    """The strategy's feature requests, then the config's extra indicators (as ``Pipeline._features``)."""
    requests = get_strategy(config.strategy.name).features(config.strategy.params)
    extra = [FeatureRequest(i["name"], i["params"]) for i in config.features.indicators]
    return requests + [r for r in extra if r not in requests]


# --------------------------------------------------------------------------------------------- worker context


@dataclass
class WorkerContext:
    """What one worker process shares across every batch of a sweep: the Store, the dataset, its features."""

    store: Store
    dataset: Dataset
    features: SharedFeatures
    load_ms: tuple[int, int]  # (started, ended) of loading and hashing the dataset

    @property
    def service(self) -> RunService:
        return RunService(self.store)

    @functools.cached_property
    def bars_per_year(self) -> float:
        """The dataset's bars per year, inferred once for every point (an inference that fails is not kept: each
        point that needs it fails with its error, as a single run does)."""
        return dataset_bars_per_year(self.dataset)


_CONTEXTS: dict[tuple[int, str, str, str], WorkerContext] = {}


def worker_context(db_url: str, data_path: str, cache_dir: str | None) -> WorkerContext:
    """This process's context for (database, data file, cache directory): built on first use, then reused."""
    key = (os.getpid(), db_url, data_path, cache_dir or "")
    context = _CONTEXTS.get(key)
    if context is None:
        store = Store(db_url)
        started = epoch_ms()
        dataset = load_ohlcv(data_path)
        loaded = max(epoch_ms(), started)
        cache = feature_cache(store, cache_dir)
        context = _CONTEXTS[key] = WorkerContext(store, dataset, SharedFeatures(cache, dataset), (started, loaded))
    return context


# --------------------------------------------------------------------------------------------- one batch


@dataclass
class _Done:
    """A point computed and its bulk rows written, waiting for the batch transaction."""

    index: int
    new: NewRun
    config: RunConfig
    performance: dict[str, Any]
    validation: Any
    execution: Any
    manifest: dict[str, Any]
    phases: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    equity: Any  # the curve, written with the batch's other curves (:meth:`_Batch._write_equity`)


def run_batch(db_url: str, data_path: str, data_hash: str, points: Sequence[Point],
              cache_dir: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Execute ``points`` (all on the data file ``data_path``, hashing to ``data_hash``) in this process.

    Returns ``(grid index, point fields)`` for every point, in input order; a failing point is reported,
    never raised (a failure of the whole batch is reported for each of its points).
    """
    try:
        context = worker_context(db_url, data_path, cache_dir)
        if context.dataset.data_hash != data_hash:
            raise IntegrityMismatch(f"the data file {data_path} now hashes to {context.dataset.data_hash[:12]}…, "
                                    f"the sweep was planned on {data_hash[:12]}…: it changed during the sweep")
    except Exception as exc:  # noqa: BLE001 - reported for each point of the batch
        text = failure_text(exc)
        return [(i, point_fields(h, RunStatus.FAILED, False, None, None, text)) for i, _, h in points]
    return _Batch(context).run(points)


class _Batch:
    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.store = context.store
        self.service = context.service
        self.dataset = context.dataset
        self.me = worker_id()

    # -- create and claim --------------------------------------------------------------------------------

    def _claim(self, news: list[NewRun]) -> tuple[set[str], set[str]]:
        """Create the runs (one transaction) and claim every claimable one (one conditional UPDATE).

        Returns ``(owned, completed)``: the runs this worker now executes and those already completed.
        """
        hashes = [n.run_hash for n in news]
        now = self.service.clock()
        later = case((Run.updated_at >= now, Run.updated_at + 1), else_=now)  # strictly increasing
        in_batch = Run.run_hash.in_(hashes)
        with self.store.session() as s:
            insert_ignore(s, Run.__table__, [pending_row(n, now) for n in news])  # type: ignore[arg-type]
            s.execute(update(Run).where(in_batch, Run.status == RunStatus.FAILED)  # a retry, as claim() does
                      .values(status=RunStatus.PENDING, updated_at=later)
                      .execution_options(synchronize_session=False))
            s.execute(update(Run).where(in_batch, Run.status == RunStatus.PENDING)
                      .values(status=RunStatus.RUNNING, updated_at=later, worker=self.me, heartbeat_at=db_now_ms())
                      .execution_options(synchronize_session=False))
            rows = s.execute(select(Run.run_hash, Run.status, Run.worker).where(in_batch)).all()
        owned = {h for h, status, worker in rows if status == RunStatus.RUNNING and worker == self.me}
        completed = {h for h, status, _ in rows if status == RunStatus.COMPLETED}
        return owned, completed

    def _beat(self, hashes: set[str]) -> Any:
        def beat(_: str) -> bool:
            with self.store.session() as s:
                result = s.execute(update(Run).where(Run.run_hash.in_(sorted(hashes)), Run.status == RunStatus.RUNNING,
                                                     Run.worker == self.me)
                                   .values(heartbeat_at=db_now_ms()).execution_options(synchronize_session=False))
            return bool(result.rowcount)  # type: ignore[attr-defined]
        return beat

    # -- the batch ---------------------------------------------------------------------------------------

    def run(self, points: Sequence[Point]) -> list[tuple[int, dict[str, Any]]]:
        out: dict[int, dict[str, Any]] = {}
        configs: dict[int, RunConfig] = {}
        news: dict[int, NewRun] = {}
        for index, raw, planned in points:
            try:
                configs[index] = load_config(raw)
                news[index] = new_run(configs[index], self.dataset)
            except Exception as exc:  # noqa: BLE001 - reported for this point
                out[index] = point_fields(planned, RunStatus.FAILED, False, None, None, failure_text(exc))
        try:
            owned, completed = self._claim(list(news.values()))
        except Exception as exc:  # noqa: BLE001 - the batch could not even start: every point fails alike
            text = failure_text(exc)
            return [(i, out.get(i) or point_fields(h, RunStatus.FAILED, False, None, None, text))
                    for i, _, h in points]
        for index, outcome in self._reused(news, completed).items():
            out[index] = outcome
        mine = [i for i in news if news[i].run_hash in owned]
        if mine:
            self.store.prepare_bulk(len(mine) * self.dataset.n_bars)  # the batch's equity curves, in one call
            with Heartbeat(self._beat(owned), "batch", heartbeat_interval_s()):
                done = [d for d in (self._compute(i, configs[i], news[i], out) for i in mine) if d is not None]
                self._finish(self._write_equity(done, out), out)
        for index in news:  # running in another worker: the pipeline waits for its outcome
            if index not in out:
                out[index] = self._elsewhere(configs[index], news[index].run_hash)
        return [(i, out[i]) for i, _, _ in points]

    def _reused(self, news: Mapping[int, NewRun], completed: set[str]) -> dict[int, dict[str, Any]]:
        hashes = [n.run_hash for n in news.values() if n.run_hash in completed]
        if not hashes:
            return {}
        stored = stored_summaries(self.store, hashes)
        return {i: stored[n.run_hash] for i, n in news.items() if n.run_hash in completed}

    def _elsewhere(self, config: RunConfig, run_hash: str) -> dict[str, Any]:
        try:
            outcome = Pipeline(self.store, cache_dir=self.context.features.cache.cache_dir).run(config, self.dataset)
        except Exception as exc:  # noqa: BLE001 - reported for this point
            return point_fields(run_hash, RunStatus.FAILED, False, None, None, failure_text(exc))
        return point_fields(run_hash, outcome.run.status, outcome.reused, outcome.metrics,
                            (outcome.validation or {}).get("payload"))

    @contextmanager
    def _phase(self, phases: list[dict[str, Any]], run_hash: str, name: str, rows: int | None) -> Iterator[dict[str, Any]]:
        extra: dict[str, Any] = {}
        started = self.service.clock()
        yield extra
        ended = max(self.service.clock(), started)
        phases.append({"run_hash": run_hash, "phase": name, "started_at": started, "ended_at": ended,
                       "duration_ms": ended - started, "rows_processed": rows, "extra_json": canonical_json(extra)})

    def _compute(self, index: int, config: RunConfig, new: NewRun, out: dict[int, dict[str, Any]]) -> _Done | None:
        """Features → backtest → metrics → validation → bulk rows of one point (``Pipeline._execute``'s stages)."""
        run_hash, dataset, n = new.run_hash, self.dataset, self.dataset.n_bars
        frame = dataset.frame
        started, loaded = self.context.load_ms
        phases = [{"run_hash": run_hash, "phase": "load", "started_at": started, "ended_at": loaded,
                   "duration_ms": loaded - started, "rows_processed": n,
                   "extra_json": canonical_json({"anomaly_counters": dataset.anomaly_counters})}]
        current = "features"
        try:
            execution = execution_params(config, dataset, lambda: self.context.bars_per_year)
            with self._phase(phases, run_hash, "features", n) as extra:
                features, used, stats = self.context.features.get(feature_requests(config), new.seed_root)
                extra.update({"features": used, "cache": stats})
            current = "backtest"
            with self._phase(phases, run_hash, "backtest", n) as extra:
                result = strategy_backtest(config, frame, features, execution)
                extra["n_trades"] = len(result.trades)
            current = "metrics"
            with self._phase(phases, run_hash, "metrics", n):
                performance = performance_metrics(result, execution.resolved_bars_per_year)
            current = "validation"
            with self._phase(phases, run_hash, "validation", n):
                validation = validate_run(config, frame, result, execution, seed_root=new.seed_root,
                                          bootstrap_seed=new.bootstrap_seed)
            current = "persist"
            with self._phase(phases, run_hash, "persist", len(result.trades) + n):
                trades = trade_records(run_hash, result.trades)  # written with the batch's transaction
        except Exception as exc:  # noqa: BLE001 - this point fails alone
            self._fail(index, run_hash, exc, current, phases, out)
            return None
        manifest = completed_manifest(new.manifest, used, config, execution)
        return _Done(index, new, config, performance, validation, execution, manifest, phases, trades, result.equity)

    def _write_equity(self, done: list[_Done], out: dict[int, dict[str, Any]]) -> list[_Done]:
        """The batch's equity curves in one fenced bulk call; the points whose curves are stored. Should that
        call fail (it stored nothing), the curves go point by point, and a point whose curve is refused fails
        alone, as on the single-run path. Each point's ``persist`` phase ends when its curve is stored."""
        if not done:
            return done
        try:
            self.store.insert_equity_runs([(d.new.run_hash, d.equity) for d in done], owner=self.me)
        except Exception:  # noqa: BLE001 - retried point by point: the failing point fails alone
            kept = []
            for d in done:
                try:
                    self.store.insert_equity(d.new.run_hash, d.equity, owner=self.me)
                except Exception as exc:  # noqa: BLE001 - this point fails alone
                    self._fail(d.index, d.new.run_hash, exc, "persist", d.phases, out)
                    continue
                kept.append(d)
            done = kept
        for d in done:
            persist = d.phases[-1]
            persist["ended_at"] = max(self.service.clock(), persist["started_at"])
            persist["duration_ms"] = persist["ended_at"] - persist["started_at"]
            d.equity = None  # written: not kept for the rest of the batch
        return done

    def _fail(self, index: int, run_hash: str, exc: BaseException, phase: str, phases: list[dict[str, Any]],
              out: dict[int, dict[str, Any]]) -> None:
        try:
            with self.store.session() as s:
                if phases:
                    s.execute(insert(PhaseMetric), phases)
            self.service.fail(run_hash, exc, phase=phase)
        except Exception:  # noqa: BLE001 - the point is reported failed either way; stale recovery cleans up
            pass
        out[index] = point_fields(run_hash, RunStatus.FAILED, False, None, None, failure_text(exc))

    def _finish(self, done: list[_Done], out: dict[int, dict[str, Any]]) -> None:
        """One transaction: fence every run, write validation, metrics and phase rows, complete the runs."""
        if not done:
            return
        n = self.dataset.n_bars
        hashes = [d.new.run_hash for d in done]
        try:
            with self.store.session() as s:
                held = set(s.scalars(select(Run.run_hash).where(
                    Run.run_hash.in_(hashes), Run.status == RunStatus.RUNNING, Run.worker == self.me,
                ).with_for_update(read=True)))
                ready = [d for d in done if d.new.run_hash in held]
                self._check_rows(s, ready, n)
                self._write_results(s, ready)
                self._complete(s, ready)
        except Exception as exc:  # noqa: BLE001 - none of the batch completed: fail each run, report each point
            for d in done:
                self._fail(d.index, d.new.run_hash, exc, "finalize", [], out)
            return
        for d in done:
            if d.new.run_hash in held:
                out[d.index] = point_fields(d.new.run_hash, RunStatus.COMPLETED, False, d.performance,
                                            d.validation.payload)
            else:
                out[d.index] = point_fields(d.new.run_hash, RunStatus.FAILED, False, None, None, failure_text(
                    RunAbandoned(f"worker {self.me} no longer owns run {d.new.run_hash[:12]}: it was recovered as "
                                 "abandoned (stale heartbeat); resubmit to get its result")))

    @staticmethod
    def _check_rows(s: Session, ready: list[_Done], n: int) -> None:
        counts = dict(s.execute(select(Equity.run_hash, func.count()).where(
            Equity.run_hash.in_([d.new.run_hash for d in ready])).group_by(Equity.run_hash)).all())
        for d in ready:
            if counts.get(d.new.run_hash, 0) != n:
                raise IntegrityMismatch(f"run {d.new.run_hash[:12]}: {counts.get(d.new.run_hash, 0)} equity rows "
                                        f"stored, {n} bars expected")

    def _write_results(self, s: Session, ready: list[_Done]) -> None:
        if not ready:
            return
        hashes = [d.new.run_hash for d in ready]
        upsert(s, Validation.__table__, [{"run_hash": d.new.run_hash, **d.validation.row}  # type: ignore[arg-type]
                                         for d in ready], ["run_hash"])
        metrics = []
        for d in ready:
            for phase, values in metric_groups(self.dataset, d.execution, d.performance, d.validation).items():
                for key, value in values.items():
                    text, value_type = encode_value(key, value)
                    metrics.append({"run_hash": d.new.run_hash, "key": key, "value": text,
                                    "value_type": value_type, "phase": phase})
        s.execute(delete(Metric).where(Metric.run_hash.in_(hashes)))
        core = s.connection()
        insert_rows(core, Metric, metrics)
        insert_rows(core, PhaseMetric, [p for d in ready for p in d.phases])
        insert_rows(core, Trade, [t for d in ready for t in d.trades])

    def _complete(self, s: Session, ready: list[_Done]) -> None:
        """``RunService.complete`` for the runs of the batch (one executemany ``UPDATE``: running → completed with
        the final manifest, ``updated_at`` strictly increasing) and their ``finalize`` phase rows."""
        if not ready:
            return
        now: Any = bindparam("now_ms", type_=BigInteger)
        stmt = (update(Run).where(Run.run_hash == bindparam("h"), Run.status == RunStatus.RUNNING,
                                  Run.worker == self.me)
                .values(status=RunStatus.COMPLETED, manifest_json=bindparam("manifest"),
                        updated_at=case((Run.updated_at >= now, Run.updated_at + 1), else_=now)))
        finalize, params = [], []
        for d in ready:
            started = d.phases[-1]["ended_at"]
            ended = max(self.service.clock(), started)
            params.append({"h": d.new.run_hash, "manifest": canonical_json(d.manifest), "now_ms": ended})
            finalize.append({"run_hash": d.new.run_hash, "phase": "finalize", "started_at": started,
                             "ended_at": ended, "duration_ms": ended - started, "rows_processed": self.dataset.n_bars,
                             "extra_json": "{}"})
        core = s.connection()
        core.execute(stmt, params)
        insert_rows(core, PhaseMetric, finalize)
        statuses = dict(s.execute(select(Run.run_hash, Run.status).where(
            Run.run_hash.in_([d.new.run_hash for d in ready]))).all())
        if any(statuses.get(d.new.run_hash) != RunStatus.COMPLETED for d in ready):
            raise IllegalTransition(f"worker {self.me}: a run of the batch changed owner while it was completed")


def stored_summaries(store: Store, run_hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Point fields of completed runs, read in two queries (their Sharpe and their validation payload)."""
    with store.read_session() as s:
        sharpe = dict(s.execute(select(Metric.run_hash, Metric.value).where(
            Metric.run_hash.in_(run_hashes), Metric.phase == "backtest", Metric.key == "sharpe")).all())
        payloads = dict(s.execute(select(Validation.run_hash, Validation.payload_json).where(
            Validation.run_hash.in_(run_hashes))).all())
    return {h: point_fields(h, RunStatus.COMPLETED, True,
                            {"sharpe": float(sharpe[h])} if h in sharpe else None,
                            json.loads(payloads[h]) if h in payloads else None)
            for h in run_hashes}

