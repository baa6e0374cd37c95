"""Many processes on one database at once (spawned, released together at a barrier), on SQLite and PostgreSQL.

* 8 processes, each a DIFFERENT run: all complete, no "database is locked" (or any other error) in any process,
  and no row lost — per-run row counts, metrics and sha256 checksums of the trades/equity frames read back are
  exactly those of the same configs run one after another in a single process into a separate database.
* 4 processes, the SAME run: one runs row, one execution (one "backtest" phase row); the other three wait for
  it and report ``reused=True``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import create_pg_database, drop_pg_database
from sqlalchemy import func, select

from alphaforge.config import load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import Equity, Metric, PhaseMetric, Run, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.pipeline import Pipeline
from alphaforge.synthetic import synthetic_ohlcv

SCALE = int(os.environ.get("ALPHAFORGE_HEAVY_SCALE", "1"))
N_BARS = 400 * SCALE
N_DIFFERENT = 8
N_SAME = 4
FASTS = (3, 5, 8, 10, 12, 15, 20, 25)  # 8 different runs; slow = 40 shared (one feature, 8 processes)
TIMEOUT_S = 240


def _raw(fast: int) -> dict[str, Any]:
    return {
        "symbol": "SYN", "seed": 17,
        "strategy": {"name": "sma_cross", "params": {"fast": fast, "slow": 40}},
        "execution": {"allow_short": True},
        "validation": {"permutation": {"n": 10}, "bootstrap": {"n": 100},
                       "walk_forward": {"folds": 3, "mode": "fixed"}},
    }


def _dataset() -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(N_BARS, seed=21))


def _submit(url: str, cache: str, raw: dict[str, Any], barrier: Any, out: Any) -> None:
    """One process: open the store, load the data, wait for everyone, run; report outcome + everything logged."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    sys.stderr = captured  # warnings and anything else printed go to the report too
    report: dict[str, Any] = {"pid": os.getpid(), "error": None}
    try:
        store = Store(url)
        dataset, config = _dataset(), load_config(raw)
        barrier.wait(timeout=120)
        started = time.perf_counter()
        outcome = Pipeline(store, cache_dir=cache).run(config, dataset)
        report.update(seconds=time.perf_counter() - started, run_hash=outcome.run.run_hash,
                      status=outcome.run.status, reused=outcome.reused, metrics=outcome.metrics)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent, which asserts on it
        report["error"] = traceback.format_exc()
    finally:
        report["log"] = captured.getvalue()
        out.put(report)


def _spawn_all(url: str, cache: Path, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(raws)), ctx.Queue()
    procs = [ctx.Process(target=_submit, args=(url, str(cache), raw, barrier, out)) for raw in raws]
    for p in procs:
        p.start()
    try:
        reports = [out.get(timeout=TIMEOUT_S) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return reports


def _assert_clean(reports: list[dict[str, Any]]) -> None:
    """No process raised, none logged or printed anything (in particular no "database is locked")."""
    for r in reports:
        assert "database is locked" not in (r["error"] or "") + r["log"], r
        assert r["error"] is None, r["error"]
        assert r["log"] == "", r["log"]


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest()


def _fingerprint(store: Store, run_hash: str) -> dict[str, Any]:
    """Everything a run stored, reduced to counts, checksums and values."""
    with store.session() as s:
        counts = {model.__tablename__: int(s.scalar(  # type: ignore[attr-defined]
            select(func.count()).select_from(model).where(model.run_hash == run_hash)  # type: ignore[attr-defined]
        ) or 0) for model in (Trade, Equity, Validation, Metric, RunError)}
        status = s.get(Run, run_hash).status  # type: ignore[union-attr]
    trades, equity = store.read_trades(run_hash), store.read_equity(run_hash)
    validation = store.read_validation(run_hash)
    return {"status": status, "counts": counts, "trades_sha256": _digest(trades), "equity_sha256": _digest(equity),
            "metrics": store.read_all_metrics(run_hash), "validation": validation}


def _phase_counts(store: Store, phase: str) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(PhaseMetric.run_hash, func.count()).where(PhaseMetric.phase == phase)
                         .group_by(PhaseMetric.run_hash)).all()
    return {h: int(n) for h, n in rows}


def _run_reference(url: str, cache: Path) -> dict[str, dict[str, Any]]:
    store, dataset = Store(url), _dataset()
    pipeline = Pipeline(store, cache_dir=cache)
    hashes = [pipeline.run(load_config(_raw(fast)), dataset).run.run_hash for fast in FASTS]
    return {h: _fingerprint(store, h) for h in hashes}


@pytest.fixture(scope="module")
def _references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    built: dict[str, Any] = {}
    yield built
    for url in built.get("_urls", []):
        (drop_pg_database if url.startswith("postgresql") else dispose_engine)(url)


@pytest.fixture
def reference(backend: str, _references: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The 8 configs run one after another in ONE process into a separate database of the same backend
    (built once per backend)."""
    if backend not in _references:
        tmp = tmp_path_factory.mktemp(f"reference_{backend}")
        url = f"sqlite:///{tmp / 'reference.db'}" if backend == "sqlite" else create_pg_database()
        _references.setdefault("_urls", []).append(url)
        _references[backend] = _run_reference(url, tmp / "cache")
    return _references[backend]  # type: ignore[no-any-return]


@pytest.mark.heavy
def test_eight_processes_each_submitting_a_different_run_lose_nothing(
    store: Store, db_url: str, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    reports = _spawn_all(db_url, tmp_path / "cache", [_raw(fast) for fast in FASTS])
    _assert_clean(reports)
    assert len({r["pid"] for r in reports}) == N_DIFFERENT
    assert all(r["status"] == "completed" and not r["reused"] for r in reports)
    assert {r["run_hash"] for r in reports} == set(reference)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == N_DIFFERENT
        assert s.scalar(select(func.count()).select_from(RunError)) == 0
    assert _phase_counts(store, "backtest") == {h: 1 for h in reference}
    for run_hash, expected in reference.items():
        got = _fingerprint(store, run_hash)
        assert got["counts"]["equity"] == N_BARS and got["counts"]["trades"] > 0
        assert got == expected, run_hash
    for r in reports:  # what each process was told is what the database holds
        assert r["metrics"] == reference[r["run_hash"]]["metrics"]["backtest"]


def test_four_processes_submitting_the_same_run_execute_it_once(
    store: Store, db_url: str, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    reports = _spawn_all(db_url, tmp_path / "cache", [_raw(FASTS[0])] * N_SAME)
    _assert_clean(reports)
    assert len({r["run_hash"] for r in reports}) == 1 and {r["status"] for r in reports} == {"completed"}
    assert sorted(r["reused"] for r in reports) == [False] + [True] * (N_SAME - 1)
    run_hash = reports[0]["run_hash"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
    assert _phase_counts(store, "backtest") == {run_hash: 1}
    assert _phase_counts(store, "features") == {run_hash: 1}
    assert all(r["metrics"] == reports[0]["metrics"] for r in reports)
    assert _fingerprint(store, run_hash) == reference[run_hash]
