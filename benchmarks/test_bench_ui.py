"""The dashboard's runs page with 50,000 runs in the database: the first page's server time.

A database is filled with 50,000 runs (CI size: 5,000) by bulk inserts of ``runs``, ``metrics`` (the 12
backtest metrics each) and ``validation`` rows, shaped like the pipeline's (their config, manifest and
validation payload are a real run's, varied per row). Then:

* ours: ``GET /`` through the app in-process (Starlette's test client): parameter parsing, the filtered count,
  the sorted page, the page's metrics, validation and phases, the database clock, the template;
* baseline (the floor): a plain ``SELECT`` of the same page: the 50 newest runs and their metric rows.

Figures: both times, the ratio (``report``: speedup = baseline / ours, below 1 since the page does more than
the floor), the absolute first-page time held to the issue's 300 ms at full size, and, recorded only, a page
sorted by Sharpe with a metric range filter (``sharpe > 0.5 and max_drawdown < 0.3``).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CI_SIZE, best_time, report, size
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import Metric, Run, Validation
from alphaforge.db.store import Store
from alphaforge.hashing import canonical_json
from alphaforge.ui.app import create_app
from alphaforge.ui.database import open_read_only

PG_URL = os.environ.get("ALPHAFORGE_TEST_PG_URL")
N_RUNS = size(50_000, 5_000)
PER_PAGE = 50
TARGET_S = 0.300
METRIC_KEYS = ("cagr", "calmar", "exposure", "max_drawdown", "n_trades", "profit_factor", "sharpe", "sortino",
               "total_return", "turnover", "volatility", "win_rate")
BATCH = 5_000
CONFIG = {"symbol": "SYN", "seed": 11, "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
          "execution": {"allow_short": True},
          "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 200},
                         "walk_forward": {"folds": 3, "mode": "optimize", "grid": {"fast": [5, 10]}}}}


def _template() -> dict[str, Any]:
    """A real run's config, manifest and validation payload (one small pipeline run)."""
    import tempfile

    from alphaforge.config import load_config
    from alphaforge.data import dataset_from_frame
    from alphaforge.data.synthetic import synthetic_ohlcv
    from alphaforge.runs.pipeline import Pipeline
    from alphaforge.runs.queries import show_run

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/t.db"
        store = Store(url)
        outcome = Pipeline(store, cache_dir=Path(tmp) / "c").run(load_config(CONFIG), dataset_from_frame(synthetic_ohlcv(300)))
        details = show_run(store, outcome.run.run_hash)
        validation = store.read_validation(outcome.run.run_hash)
        dispose_engine(url)
    assert validation is not None
    return {"config": details["config"], "manifest": details["manifest"], "validation": validation}


def fill(url: str, n_runs: int) -> None:
    """``n_runs`` completed runs with metrics and validation rows, by bulk (executemany) inserts."""
    template = _template()
    rng = random.Random(5)
    engine = create_engine(url, poolclass=NullPool)
    now = int(time.time() * 1000)
    symbols = [f"SYM{i:03d}" for i in range(200)]
    with engine.begin() as conn:
        for start in range(0, n_runs, BATCH):
            runs, metrics, validations = [], [], []
            for i in range(start, min(start + BATCH, n_runs)):
                run_hash = f"{i:016x}" + uuid.UUID(int=rng.getrandbits(128)).hex + "0" * 16
                config = {**template["config"], "symbol": rng.choice(symbols), "seed": i,
                          "strategy": {"name": "sma_cross", "params": {"fast": rng.randint(2, 50), "slow": 60}}}
                created = now - (n_runs - i) * 1000
                runs.append({"run_hash": run_hash, "created_at": created, "updated_at": created + 500,
                             "status": "completed", "config_json": canonical_json(config),
                             "manifest_json": canonical_json(template["manifest"]), "data_hash": "a" * 64,
                             "seed_root": i, "db_version": 3, "bootstrap_seed": i, "walk_forward_spec_json": None})
                for key in METRIC_KEYS:
                    value: Any = rng.randint(0, 200) if key == "n_trades" else rng.uniform(-1, 2)
                    metrics.append({"run_hash": run_hash, "key": key, "value": repr(value),
                                    "value_type": "int" if key == "n_trades" else "float", "phase": "backtest"})
                v = template["validation"]
                validations.append({**{k: v[k] for k in v if k != "run_hash"}, "run_hash": run_hash,
                                    "permutation_pvalue": rng.random()})
            conn.execute(insert(Run), runs)
            conn.execute(insert(Metric), metrics)
            conn.execute(insert(Validation), validations)
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("the PostgreSQL variant needs ALPHAFORGE_TEST_PG_URL")
        name = f"af_bench_ui_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        Store(url)
        fill(url, N_RUNS)
        # the steady state autovacuum keeps a live database in (visibility map set, statistics current)
        with create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        yield url
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    url = f"sqlite:///{tmp_path_factory.mktemp('bench-ui') / 'ui.db'}"
    Store(url)
    fill(url, N_RUNS)
    dispose_engine(url)
    yield url


def test_first_runs_page_with_many_runs(benchmark: Any, db: str) -> None:
    store = open_read_only(db)
    client = TestClient(create_app(store))

    def page() -> None:
        r = client.get("/")
        assert r.status_code == 200 and r.text.count("<tr data-run=") == PER_PAGE

    def plain_select() -> None:
        with store.read_session() as s:
            runs = list(s.scalars(select(Run).order_by(Run.updated_at.desc(), Run.run_hash).limit(PER_PAGE)))
            rows = s.execute(select(Metric.run_hash, Metric.key, Metric.value)
                             .where(Metric.run_hash.in_([r.run_hash for r in runs]))).all()
        assert len(runs) == PER_PAGE and len(rows) == PER_PAGE * len(METRIC_KEYS)

    page()
    plain_select()  # warm both (connection pool, SQLite page cache) before timing
    ours = best_time(page, rounds=5)
    baseline = best_time(plain_select, rounds=5)
    filtered_path = "/?sort=sharpe&filters=" + "sharpe%20%3E%200.5%20and%20max_drawdown%20%3C%200.3"
    sorted_filtered = best_time(lambda: client.get(filtered_path).raise_for_status(), rounds=3)
    total = client.get("/api/runs?per_page=1").json()["total"]
    assert total == N_RUNS
    backend = make_url(db).get_backend_name()
    benchmark.extra_info.update({"n_runs": N_RUNS, "backend": backend, "first_page_s": round(ours, 4),
                                 "plain_select_s": round(baseline, 4),
                                 "sorted_filtered_page_s": round(sorted_filtered, 4),
                                 "load_average": os.getloadavg()[0]})
    print(f"\n[ui {backend}, {N_RUNS} runs] first page {ours * 1000:.1f} ms, plain SELECT {baseline * 1000:.1f} ms, "
          f"sorted by sharpe + range filter {sorted_filtered * 1000:.1f} ms (load {os.getloadavg()[0]:.1f})")
    report(benchmark, f"ui first page, {N_RUNS} runs ({backend}): page vs plain SELECT", ours, baseline,
           floor=0.5, ci_floor=0.15)
    if not CI_SIZE:
        assert ours <= TARGET_S, f"first page took {ours * 1000:.0f} ms with {N_RUNS} runs (target 300 ms)"
    benchmark.pedantic(page, rounds=3, iterations=1)
