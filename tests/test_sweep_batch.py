"""The batched sweep path stores exactly what single runs store, and shares its work across points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from alphaforge.config import load_config, run_hash_of
from alphaforge.data import load_ohlcv
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db import bulk, bulk_mixin
from alphaforge.db.models import FeaturesCacheMeta, PhaseMetric, Run
from alphaforge.db.store import Store
from alphaforge.runs.pipeline import PHASES, Pipeline
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import pending_row
from alphaforge.runs.sweep import batch_size_for, run_sweep
from alphaforge.runs.sweep_batch import run_batch
from alphaforge.runs.sweep_grid import grid_configs

BASE: dict[str, Any] = {
    "symbol": "SYN",
    "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 50}},
    "execution": {"allow_short": True},
    "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 50},
                   "walk_forward": {"folds": 3, "mode": "fixed"}},
    "features": {"indicators": [{"name": "rsi", "params": {"window": 14}}]},
}
RUN_COLUMNS = ("run_hash", "status", "config_json", "data_hash", "seed_root", "db_version", "bootstrap_seed",
               "walk_forward_spec_json")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch_data") / "bars.csv"
    synthetic_ohlcv(500, seed=4).to_csv(path, index=False)
    return path


def _run_row(store: Store, run_hash: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with store.read_session() as s:
        run = s.get(Run, run_hash)
        assert run is not None
        row = {c: getattr(run, c) for c in RUN_COLUMNS}
        manifest = json.loads(run.manifest_json)
    for feature in manifest["features"]:  # whether the column came from a file or memory is not a result
        del feature["hit"], feature["rebuilt_corrupt"]
    return row, manifest


def _phases(store: Store, run_hash: str) -> list[tuple[str, int | None, list[str]]]:
    with store.read_session() as s:
        rows = s.execute(select(PhaseMetric.phase, PhaseMetric.rows_processed, PhaseMetric.extra_json)
                         .where(PhaseMetric.run_hash == run_hash).order_by(PhaseMetric.id)).all()
    return [(phase, n, sorted(json.loads(extra))) for phase, n, extra in rows]


def test_every_stored_row_equals_what_a_single_run_stores(
    db_url: str, empty_db_url: str, data_path: Path, tmp_path: Path
) -> None:
    # no explicit seed: every point has its own seed_root, so its own feature-cache keys
    configs = grid_configs(BASE, ["strategy.params.fast=5,10", "strategy.params.slow=30,60"])
    swept = run_sweep(db_url, data_path, configs, workers=1, cache_dir=tmp_path / "cache_a", batch_size=3)
    assert swept.ok and len(swept.runs) == 4
    ours, single = Store(db_url), Store(empty_db_url)
    pipeline = Pipeline(single, cache_dir=tmp_path / "cache_b")
    data_hash = load_ohlcv(data_path).data_hash
    for point in swept.runs:
        outcome = pipeline.run(load_config(configs[point.index]), data_path)
        run_hash = outcome.run.run_hash
        assert point.run_hash == run_hash == run_hash_of(load_config(configs[point.index]), data_hash)
        assert _run_row(ours, run_hash) == _run_row(single, run_hash)
        pd.testing.assert_frame_equal(ours.read_trades(run_hash), single.read_trades(run_hash))
        pd.testing.assert_frame_equal(ours.read_equity(run_hash), single.read_equity(run_hash))
        assert ours.read_all_metrics(run_hash) == single.read_all_metrics(run_hash)
        assert ours.read_validation(run_hash) == single.read_validation(run_hash)
        assert _phases(ours, run_hash) == _phases(single, run_hash)
        assert [p for p, _, _ in _phases(ours, run_hash)] == list(PHASES)
        assert point.sharpe == outcome.metrics["sharpe"]
        assert point.oos_sharpe == outcome.validation["payload"]["walk_forward"]["oos_sharpe"]  # type: ignore[index]


def test_a_batch_builds_each_indicator_column_once_and_a_failing_point_fails_alone(
    db_url: str, data_path: Path, tmp_path: Path
) -> None:
    base = {**BASE, "seed": 7, "features": {}}
    # fast 5 and 10 against slow 30 and 60: four points, three distinct SMA windows... plus 5,10 shared
    configs = grid_configs(base, ["strategy.params.fast=5,10", "strategy.params.slow=30,60",
                                  "validation.walk_forward.folds=3,300"])
    data_hash = load_ohlcv(data_path).data_hash
    points = [(i, c, run_hash_of(load_config(c), data_hash)) for i, c in enumerate(configs)]
    answered = run_batch(db_url, str(data_path), data_hash, points, str(tmp_path / "cache"))
    assert [i for i, _ in answered] == list(range(8))
    by_folds = {i: f for i, f in answered}
    for i, fields in by_folds.items():
        if configs[i]["validation"]["walk_forward"]["folds"] == 300:  # needs 602 bars: fails, alone
            assert fields["status"] == "failed" and fields["error"].startswith("DATA_INVALID: walk-forward")
        else:
            assert fields["status"] == "completed" and fields["sharpe"] is not None and not fields["reused"]
    store = Store(db_url)
    with store.read_session() as s:
        extras = [json.loads(e) for e in s.scalars(select(PhaseMetric.extra_json).where(
            PhaseMetric.phase == "features").order_by(PhaseMetric.id))]
    built = sum(e["cache"]["misses"] for e in extras)
    assert built == 4  # sma_5, sma_10, sma_30, sma_60: each built once for eight points
    assert sum(e["cache"]["hits"] for e in extras) == 2 * 8 - 4
    with store.read_session() as s:
        statuses = dict(s.execute(select(Run.run_hash, Run.status)).all())
    assert sorted(statuses.values()) == ["completed"] * 4 + ["failed"] * 4
    again = run_batch(db_url, str(data_path), data_hash, points, str(tmp_path / "cache"))
    assert [f["reused"] for _, f in again if f["status"] == "completed"] == [True] * 4


def test_a_batch_on_a_changed_data_file_fails_every_point_without_running(
    db_url: str, data_path: Path, tmp_path: Path
) -> None:
    configs = grid_configs(BASE, ["strategy.params.fast=5,10"])
    points = [(i, c, "0" * 64) for i, c in enumerate(configs)]
    answered = run_batch(db_url, str(data_path), "f" * 64, points, str(tmp_path / "cache"))
    assert all(f["status"] == "failed" and f["error"].startswith("INTEGRITY_MISMATCH: the data file")
               for _, f in answered)
    with Store(db_url).read_session() as s:
        assert s.scalars(select(Run.run_hash)).first() is None


def test_a_sweep_builds_each_indicator_column_once_while_its_workers_start(
    db_url: str, data_path: Path, tmp_path: Path
) -> None:
    # three fast and two slow windows, one seed: five SMA columns for six points on two workers
    configs = grid_configs({**BASE, "seed": 7, "features": {}},
                           ["strategy.params.fast=5,10,20", "strategy.params.slow=30,60"])
    swept = run_sweep(db_url, data_path, configs, workers=2, cache_dir=tmp_path / "cache", batch_size=2)
    assert swept.ok and len(swept.runs) == 6
    store = Store(db_url)
    with store.read_session() as s:
        extras = [json.loads(e) for e in s.scalars(select(PhaseMetric.extra_json).where(
            PhaseMetric.phase == "features"))]
        cached = s.scalar(select(func.count()).select_from(FeaturesCacheMeta))
    assert cached == 5 and len(list((tmp_path / "cache").rglob("*.parquet"))) == 5
    # built by the sweep before any worker asked (workers take a second to start, the columns milliseconds):
    # no worker computed a column, and none waited for the write lock to record one in the middle of a batch
    assert sum(e["cache"]["misses"] for e in extras) == 0
    assert sum(e["cache"]["hits"] for e in extras) == 2 * 6


@pytest.mark.parametrize("through_helper", [False, True])
@pytest.mark.parametrize("refused", [False, True])
def test_a_batch_writes_its_equity_curves_in_one_call_and_a_refused_curve_fails_its_point_alone(
    db_url: str, empty_db_url: str, data_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    through_helper: bool, refused: bool,
) -> None:
    if through_helper:  # SQLite: the bulk helper process instead of the in-process path (PostgreSQL: ADBC either way)
        monkeypatch.setattr(bulk, "SMALL_FRAME_ROWS", 1)
    calls: dict[str, int] = {"insert_equity_runs": 0, "insert_equity": 0}

    def counted(name: str) -> Any:
        real = getattr(Store, name)

        def spy(self: Store, *args: Any, **kw: Any) -> Any:
            calls[name] += 1
            return real(self, *args, **kw)
        return spy

    for name in calls:
        monkeypatch.setattr(Store, name, counted(name))
    configs = grid_configs({**BASE, "seed": 5}, ["strategy.params.fast=5,10,15"])
    dataset = load_ohlcv(data_path)
    points = [(i, c, run_hash_of(load_config(c), dataset.data_hash)) for i, c in enumerate(configs)]
    store = Store(db_url)
    stray = points[1][2]
    if refused:  # the second point's run exists (pending) with a bar of equity already stored: its curve collides
        with store.session() as s:
            s.add(Run(**pending_row(new_run(load_config(configs[1]), dataset), 1)))
        first_bar = pd.DataFrame({"ts": dataset.frame["ts"].to_numpy()[:1], "equity": [1.0], "drawdown": [0.0],
                                  "realized_pnl": [0.0], "unrealized_pnl": [0.0], "cost_drag": [0.0]})
        bulk_mixin.BulkMixin.insert_equity(store, stray, first_bar)  # the real one: not counted below
    answered = dict(run_batch(db_url, str(data_path), dataset.data_hash, points, str(tmp_path / "cache")))
    assert calls["insert_equity_runs"] == 1  # the batch's curves: one call
    assert calls["insert_equity"] == (3 if refused else 0)  # point by point only after that call failed
    for i, _, run_hash in points:
        if refused and run_hash == stray:
            assert answered[i]["status"] == "failed" and "already stored" in answered[i]["error"]
            continue
        assert answered[i]["status"] == "completed"
        single = Pipeline(Store(empty_db_url), cache_dir=tmp_path / "cache_single").run(load_config(configs[i]),
                                                                                         data_path)
        assert single.run.run_hash == run_hash
        pd.testing.assert_frame_equal(store.read_equity(run_hash), Store(empty_db_url).read_equity(run_hash))
        assert _phases(store, run_hash) == _phases(Store(empty_db_url), run_hash)
    with store.read_session() as s:
        statuses = dict(s.execute(select(Run.run_hash, Run.status)).all())
    assert statuses == {h: "failed" if refused and h == stray else "completed" for _, _, h in points}


@pytest.mark.parametrize("n, workers, expected", [(400, 2, 25), (4000, 2, 64), (3, 2, 1), (1, 8, 1), (9, 1, 2)])
def test_batch_size_is_about_eight_tasks_per_worker_and_bounded(n: int, workers: int, expected: int) -> None:
    assert batch_size_for(n, workers) == expected
