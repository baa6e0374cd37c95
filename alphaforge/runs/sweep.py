"""Parameter sweeps: a grid of configurations run as independent runs, on a process pool or a Dask cluster.

:func:`alphaforge.runs.sweep_grid.grid_configs` turns a base config and ``dotted.key=v1,v2,…`` axes into one raw config per
grid point (cartesian product, first axis outermost; values parsed exactly like ``--set`` values). ``run_sweep`` validates
every point (an invalid one — e.g. ``fast >= slow`` — is *skipped* with its reason, never fatal), drops points
that are the same run as an earlier one, and executes the rest in batches of points per task
(:func:`alphaforge.runs.sweep_batch.run_batch`: the data, the feature columns and the transactions shared
within a worker; every stored row the one ``Pipeline(Store(url)).run(config, data)`` stores):

* locally on a :class:`concurrent.futures.ProcessPoolExecutor` ("spawn" context, ``os.cpu_count()`` workers by
  default), or
* on a Dask distributed cluster when a scheduler address is given (the optional ``dask`` extra, imported
  lazily). Workers must see the data file and the database at the same location as the caller.

No scheduling of our own: the pool (or Dask) only moves the work, the database keeps the truth. Each point is a
run with its own ``run_hash``, and the service's atomic claim (one conditional ``UPDATE pending → running``)
makes sure a run executes exactly once even when two sweeps of overlapping grids run at the same time on
different machines: the loser of the claim waits for the winner's outcome and reports the run as reused.
Points already completed in the database are answered from it without starting any worker.

A run that fails is reported with ``status = "failed"`` and its error; the sweep carries on. A local worker
process that dies (OOM kill, segfault) breaks a ``ProcessPoolExecutor`` as a whole, so the unanswered points go
to a fresh pool (at most :data:`MAX_POOL_RESTARTS` times); the runs the dead workers left ``running`` are
recovered by the service once their heartbeat is stale, and executed again. Dask reschedules such tasks itself.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from alphaforge.config import RunConfig, load_config, run_hash_of
from alphaforge.data import Dataset, load_ohlcv
from alphaforge.db.engine import parse_url
from alphaforge.db.migrate import resolve_url
from alphaforge.db.models import Run
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus
from alphaforge.errors import ConfigInvalid
from alphaforge.numeric import finite_number
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.sweep_batch import build_features, failure_text, run_batch, stored_summaries
from alphaforge.runs.sweep_grid import point_params

RANKED_BY = ("oos_sharpe", "sharpe")
MAX_POOL_RESTARTS = 2
MAX_BATCH = 64
TASKS_PER_WORKER = 8
LOG = logging.getLogger("alphaforge.runs.sweep")
ProgressFn = Callable[["PointResult"], None]


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PointResult:
    """One executed (or reused) grid point."""

    index: int  # position in the grid
    params: dict[str, Any]
    run_hash: str | None
    status: str  # completed | failed
    reused: bool
    sharpe: float | None
    oos_sharpe: float | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_hash": self.run_hash, "params": self.params, "status": self.status, "reused": self.reused,
                "sharpe": self.sharpe, "oos_sharpe": self.oos_sharpe, "error": self.error}


@dataclass(frozen=True)
class SkippedPoint:
    """A grid point that was not run: invalid config, or the same run as an earlier point."""

    index: int
    params: dict[str, Any]
    reason: str
    run_hash: str | None = None  # the run of the earlier point it repeats (None: an invalid config)

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "reason": self.reason}


@dataclass(frozen=True)
class SweepResult:
    ranked_by: str  # "oos_sharpe" (walk-forward, out of sample) or "sharpe" (full sample)
    runs: list[PointResult]  # best first; failed and metric-less runs last
    skipped: list[SkippedPoint] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == RunStatus.COMPLETED for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {"ranked_by": self.ranked_by, "runs": [r.to_json() for r in self.runs],
                "skipped": [s.to_json() for s in self.skipped]}


def _outcome_fields(outcome: Any) -> dict[str, Any]:
    """The plain-data summary of a :class:`~alphaforge.runs.queries.RunOutcome` a sweep keeps."""
    payload = (outcome.validation or {}).get("payload") or {}
    wf = payload.get("walk_forward") or {}
    return {"run_hash": outcome.run.run_hash, "status": outcome.run.status, "reused": outcome.reused,
            "sharpe": finite_number(outcome.metrics.get("sharpe")),
            "oos_sharpe": finite_number(wf.get("oos_sharpe")),
            "error": None}


def rank(results: Sequence[PointResult], ranked_by: str) -> list[PointResult]:
    """Best first by ``ranked_by``; ties keep grid order; runs without the metric (failed) go last."""
    def key(r: PointResult) -> tuple[int, float, int]:
        value = getattr(r, ranked_by)
        return (1, 0.0, r.index) if value is None else (0, -value, r.index)

    return sorted(results, key=key)


# --------------------------------------------------------------------------------------------- the task


def run_point(db_url: str, data_path: str, raw_config: dict[str, Any],
              cache_dir: str | None = None) -> dict[str, Any]:
    """Execute one grid point alone: ``Pipeline(Store(db_url), cache_dir=…).run(config, data_path)`` (the
    per-point path sweeps used before batching; kept as the reference the batched path is measured and
    checked against).

    Returns plain data (picklable across processes and machines); a failing run is reported, not raised.
    """

    try:
        config = load_config(raw_config)
        store = Store(db_url)
        outcome = Pipeline(store, cache_dir=cache_dir or config.features.cache_dir).run(config, data_path)
        return _outcome_fields(outcome)
    except Exception as exc:  # noqa: BLE001 - one failing point must not take the sweep down
        return {"run_hash": None, "status": RunStatus.FAILED.value, "reused": False, "sharpe": None, "oos_sharpe": None,
                "error": failure_text(exc)}


# --------------------------------------------------------------------------------------------- the sweep


def shared_url(db_url: str) -> str:
    """The URL as every worker must see it: a relative SQLite path made absolute; ``:memory:`` refused."""

    url = resolve_url(db_url)
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return url
    if parsed.database in (None, "", ":memory:") or (parsed.database or "").startswith("file:"):
        raise ConfigInvalid(f"--db {url}: a sweep needs a database its worker processes share; an in-memory "
                            "SQLite database is private to one process (use a file or PostgreSQL)", field="db")
    database = str(Path(parsed.database).resolve())
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class _Plan:
    params: list[dict[str, Any]]  # every point's coordinates, by grid index
    todo: list[tuple[int, dict[str, Any], str]]  # (index, raw config, run_hash) to execute
    done: list[PointResult]
    skipped: list[SkippedPoint]
    ranked_by: str
    data_hash: str = ""
    dataset: Dataset | None = None  # loaded to plan: its features are built while the workers start
    configs: dict[int, RunConfig] = field(default_factory=dict)  # the config of every point to execute


def _plan(store: Any, data_path: str, raw_configs: Sequence[dict[str, Any]]) -> _Plan:
    params = point_params(raw_configs)
    skipped: list[SkippedPoint] = []
    valid: list[tuple[int, dict[str, Any], RunConfig]] = []
    for i, raw in enumerate(raw_configs):
        try:
            valid.append((i, raw, load_config(raw)))
        except ConfigInvalid as exc:
            skipped.append(SkippedPoint(i, params[i], exc.message))
    ranked_by = "oos_sharpe" if valid and all(c.validation.walk_forward is not None for _, _, c in valid) \
        else "sharpe"
    if not valid:
        return _Plan(params, [], [], skipped, ranked_by)
    dataset = load_ohlcv(data_path)  # also refuses a bad data file before any worker starts
    data_hash = dataset.data_hash
    first: dict[str, int] = {}
    todo: list[tuple[int, dict[str, Any], str]] = []
    for i, raw, config in valid:
        run_hash = run_hash_of(config, data_hash)
        if run_hash in first:
            skipped.append(SkippedPoint(i, params[i], f"same run as grid point {first[run_hash]} "
                                                       f"(run_hash {run_hash[:12]})", run_hash))
            continue
        first[run_hash] = i
        todo.append((i, raw, run_hash))
    with store.read_session() as s:
        completed = set(s.scalars(select(Run.run_hash).where(
            Run.run_hash.in_([h for _, _, h in todo]), Run.status == RunStatus.COMPLETED)))
    stored = stored_summaries(store, sorted(completed)) if completed else {}
    done = [PointResult(index=i, params=params[i], **stored[h]) for i, _, h in todo if h in completed]
    todo = [t for t in todo if t[2] not in completed]
    configs = {i: config for i, _, config in valid}
    return _Plan(params, todo, done, sorted(skipped, key=lambda s: s.index), ranked_by, data_hash, dataset,
                 {i: configs[i] for i, _, _ in todo})


def check_execution(workers: int | None, scheduler: str | None) -> None:
    """Refuse an impossible choice of executor before anything runs or is recorded."""
    if workers is not None and scheduler is not None:
        raise ConfigInvalid("give either --workers (local processes) or --scheduler (Dask), not both",
                            field="workers")
    if workers is not None and workers < 1:
        raise ConfigInvalid(f"--workers {workers}: must be >= 1", field="workers")
    if scheduler is not None:
        _dask()  # refuse early when the extra is missing


def run_sweep(db_url: str, data_path: str | os.PathLike[str], raw_configs: Sequence[dict[str, Any]], *,
              workers: int | None = None, scheduler: str | None = None,
              cache_dir: str | os.PathLike[str] | None = None,
              progress: ProgressFn | None = None, batch_size: int | None = None) -> SweepResult:
    """Run every valid config of ``raw_configs`` on ``data_path`` into ``db_url`` and rank the results.

    ``workers`` local processes (default ``os.cpu_count()``), or the Dask cluster at ``scheduler``.
    ``progress`` is called once per finished point (reused-from-the-database points included).
    ``batch_size``: points per task (default :func:`batch_size_for`).
    """

    check_execution(workers, scheduler)
    url = shared_url(db_url)
    data = Path(data_path)
    if not data.is_file():
        raise ConfigInvalid(f"--data {data}: no such file", field="data")
    data_abs = str(data.resolve())
    cache = None if cache_dir is None else str(Path(cache_dir).resolve())
    plan = _plan(Store(url), data_abs, list(raw_configs))  # also creates/migrates the schema once, here
    results = list(plan.done)
    report = progress or (lambda result: None)
    for result in plan.done:
        report(result)
    if plan.todo:
        execute = _on_dask if scheduler is not None else _on_pool
        planned = {i: run_hash for i, _, run_hash in plan.todo}
        assert plan.dataset is not None
        features = threading.Thread(target=build_features, name="sweep-features", daemon=True,
                                    args=(Store(url), plan.dataset, list(plan.configs.values()), cache))
        features.start()  # while the workers start (they find the columns in the cache, or build them)
        try:
            for index, fields in execute(url, data_abs, plan.data_hash, plan.todo, cache, workers=workers,
                                         scheduler=scheduler, batch_size=batch_size):
                fields = {**fields, "run_hash": fields["run_hash"] or planned[index]}
                result = PointResult(index=index, params=plan.params[index], **fields)
                results.append(result)
                report(result)
        finally:
            features.join()
    return SweepResult(plan.ranked_by, rank(results, plan.ranked_by), plan.skipped)


Executed = Iterator[tuple[int, dict[str, Any]]]
Todo = list[tuple[int, dict[str, Any], str]]


def batch_size_for(n_points: int, workers: int) -> int:
    """Points per task: about :data:`TASKS_PER_WORKER` tasks per worker (the workers finish together, progress
    moves, a dead worker loses little), at most :data:`MAX_BATCH` points (one batch's transaction stays short),
    at least one."""
    return max(1, min(MAX_BATCH, math.ceil(n_points / (TASKS_PER_WORKER * max(1, workers)))))


def _batches(todo: Todo, size: int) -> list[Todo]:
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def _lost(run_hash: str, exc: BaseException) -> dict[str, Any]:
    """A point whose worker itself died (not a run failure: the task never returned)."""
    return {"run_hash": run_hash, "status": RunStatus.FAILED.value, "reused": False, "sharpe": None, "oos_sharpe": None,
            "error": f"WORKER_LOST: {type(exc).__name__}: {' '.join(str(exc).split())}"}


def _on_pool(url: str, data: str, data_hash: str, todo: Todo, cache: str | None, *,
             workers: int | None, scheduler: str | None, batch_size: int | None) -> Executed:
    """On a local spawn pool, in batches (:func:`alphaforge.runs.sweep_batch.run_batch`). A worker that dies
    (OOM kill, segfault) breaks the whole pool — the executor terminates the other workers too — so the points
    not yet answered go to a fresh pool, at most :data:`MAX_POOL_RESTARTS` times. Their runs left ``running``
    by the dead workers are recovered by the service once their heartbeat is stale (the resubmitted task waits
    for that), then executed again."""
    remaining = {i: (raw, run_hash) for i, raw, run_hash in todo}
    for attempt in range(MAX_POOL_RESTARTS + 1):
        n = max(1, min(workers or os.cpu_count() or 1, len(remaining)))
        pending = [(i, raw, h) for i, (raw, h) in remaining.items()]
        size = batch_size or batch_size_for(len(pending), n)
        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
        broken: BrokenProcessPool | None = None
        futures: dict[Future[list[tuple[int, dict[str, Any]]]], Todo] = {}
        try:
            try:
                for batch in _batches(pending, size):
                    futures[pool.submit(run_batch, url, data, data_hash, batch, cache)] = batch
            except BrokenProcessPool as exc:  # broke while submitting: what was submitted fails alike
                broken = exc
            for future in as_completed(futures):
                batch = futures[future]
                try:
                    answered = future.result()
                except BrokenProcessPool as exc:
                    broken = exc
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result: report the points, go on
                    answered = [(i, _lost(h, exc)) for i, _, h in batch]
                for index, fields in answered:
                    del remaining[index]
                    yield index, fields
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if broken is None or not remaining:
            return
        if attempt == MAX_POOL_RESTARTS:
            break
        LOG.warning("sweep: a worker process died (%s); %d point(s) go to a fresh pool (restart %d of %d)",
                    broken, len(remaining), attempt + 1, MAX_POOL_RESTARTS)
    for index, (_, run_hash) in remaining.items():
        yield index, _lost(run_hash, BrokenProcessPool(f"the worker pool broke {MAX_POOL_RESTARTS + 1} times"))


def _dask() -> tuple[Any, Any]:
    """``(Client, as_completed)`` from Dask distributed, imported only when a sweep asks for a cluster."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_as_completed
    except ImportError as exc:
        raise ConfigInvalid(
            f"--scheduler needs Dask distributed, which is not installed ({exc}); install the extra with "
            "`pip install 'alphaforge[dask]'` or run on local processes with --workers", field="scheduler",
        ) from None
    return Client, dask_as_completed


def _on_dask(url: str, data: str, data_hash: str, todo: Todo, cache: str | None, *,
             workers: int | None, scheduler: str | None, batch_size: int | None) -> Executed:
    client_class, dask_as_completed = _dask()
    try:
        client = client_class(scheduler, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigInvalid(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc}); start one "
                            "(`dask scheduler`) or check the address", field="scheduler") from None
    sweep_id = uuid.uuid4().hex[:8]
    with client:
        size = batch_size or batch_size_for(len(todo), len(client.scheduler_info().get("workers", {})) or 1)
        futures = {
            client.submit(run_batch, url, data, data_hash, batch, cache,
                          key=f"alphaforge-sweep-{sweep_id}-{batch[0][2][:16]}", pure=False): batch
            for batch in _batches(todo, size)
        }
        for future in dask_as_completed(list(futures), loop=client.loop):
            batch = futures[future]
            try:
                answered = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker lost for good: report the points, go on
                answered = [(i, _lost(h, exc)) for i, _, h in batch]
            yield from answered
