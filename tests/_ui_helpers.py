"""A populated database for the dashboard's tests, made by the real pipeline on small synthetic data.

Runs: completed runs on different symbols and parameters (one whose symbol is an HTML/script payload, so its
config holds HTML too), a failed run (an error row), and a running run with an open phase and a heartbeat.
Sweep-family rows (a study, a sweep over ``strategy.params.fast`` × ``strategy.params.slow`` pointing at the
completed runs, one skipped point, a family report) are written with the ORM, as ``sweep`` would.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from test_pipeline import small_config

from alphaforge.data import dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import MODELS, FamilyReport, PhaseMetric, Study, Sweep, SweepPoint
from alphaforge.db.store import Store
from alphaforge.hashing import canonical_json
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import RunService

XSS = "<script>alert(1)</script>"
N_BARS = 300
STUDY = "study <b>one</b>"
GRID = [("strategy.params.fast", [5, 10]), ("strategy.params.slow", [20, 30])]
#: (symbol, fast, slow, data seed) of the completed runs, in grid order of (fast, slow)
COMPLETED = (("AAA", 5, 20, 1), ("BBB", 5, 30, 2), (XSS, 10, 20, 3), ("DDD", 10, 30, 4))


@dataclass
class Populated:
    url: str
    completed: list[str] = field(default_factory=list)  # run_hashes in COMPLETED order
    failed: str = ""
    running: str = ""
    sweep_id: str = ""
    study: str = STUDY


def _sha(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def populate(url: str, cache_dir: Path) -> Populated:
    store = Store(url)
    out = Populated(url)
    pipeline = Pipeline(store, cache_dir=cache_dir)
    for symbol, fast, slow, seed in COMPLETED:
        config = small_config(symbol=symbol, seed=seed, strategy={"name": "sma_cross",
                                                                  "params": {"fast": fast, "slow": slow}})
        outcome = pipeline.run(config, dataset_from_frame(synthetic_ohlcv(N_BARS, seed=seed)))
        out.completed.append(outcome.run.run_hash)
    service = RunService(store)
    dataset = dataset_from_frame(synthetic_ohlcv(N_BARS, seed=9))
    failed = service.create(new_run(small_config(symbol="FAIL"), dataset)).run.run_hash
    assert service.claim(failed)
    service.fail(failed, RuntimeError("boom <i>not markup</i>"), phase="backtest")
    out.failed = failed
    running = service.create(new_run(small_config(symbol="LIVE"), dataset)).run.run_hash
    assert service.claim(running)
    with store.session() as s:  # an open phase row: the run is mid-phase, as a live worker's would be
        s.add(PhaseMetric(run_hash=running, phase="validation", started_at=1, extra_json="{}"))
    out.running = running
    _sweep_rows(store, out)
    return out


def _sweep_rows(store: Store, out: Populated) -> None:
    data_hash = "0" * 64
    base = small_config().to_dict()
    out.sweep_id = _sha({"base": base, "grid": GRID, "data_hash": data_hash})
    with store.session() as s:
        s.add(Study(name=STUDY, data_hash=data_hash, strategy="sma_cross", symbol=None, created_at=1))
        s.add(Sweep(sweep_id=out.sweep_id, study=STUDY, data_hash=data_hash, base_config_json=canonical_json(base),
                    grid_json=canonical_json(GRID), n_points=5, status="completed", created_at=1, updated_at=2))
        for i, ((_sym, fast, slow, _seed), run_hash) in enumerate(zip(COMPLETED, out.completed, strict=True)):
            s.add(SweepPoint(sweep_id=out.sweep_id, point_index=i, run_hash=run_hash,
                             params_json=canonical_json({"strategy.params.fast": fast,
                                                         "strategy.params.slow": slow})))
        s.add(SweepPoint(sweep_id=out.sweep_id, point_index=4, run_hash=None, skip_reason="slow <= fast",
                         params_json=canonical_json({"strategy.params.fast": 30, "strategy.params.slow": 20})))
        s.flush()
        report = {"deflated_sharpe": {"value": 0.42}, "pbo": 0.25, "note": "<script>alert(2)</script>"}
        s.add(FamilyReport(report_key=_sha({"scope": "sweep", "scope_key": out.sweep_id}), scope="sweep",
                           study=STUDY, sweep_id=out.sweep_id, params_json=canonical_json({"reps": 10}), seed=1,
                           family_hash=_sha(sorted(out.completed)), n_trials=4, report_json=canonical_json(report),
                           methodology_version="test", created_at=3))


def checksum(url: str) -> str:
    """A digest of everything stored: the SQLite file (plus any WAL) byte for byte; on PostgreSQL, every
    table's rows (``alembic_version`` and the model tables) in a canonical order."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        digest = hashlib.sha256()
        for suffix in ("", "-wal"):
            if os.path.exists(path + suffix):
                digest.update(Path(path + suffix).read_bytes())
        return digest.hexdigest()
    engine = create_engine(url, poolclass=NullPool)
    parts = {}
    with engine.connect() as conn:
        for table in ["alembic_version", *(m.__tablename__ for m in MODELS)]:
            # the table names are the models' own, never input
            sql = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"  # noqa: S608
            parts[table] = tuple(conn.execute(text(sql)).one())
    engine.dispose()
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def settle(url: str) -> None:
    """Close this process's connections to ``url`` (SQLite checkpoints its WAL into the file)."""
    dispose_engine(url)
