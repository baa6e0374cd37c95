"""`alphaforge sweep`: grid expansion, local-pool and Dask execution, reuse, exactly-once across two sweeps."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import alphaforge.runs.sweep as sweep_module
from alphaforge.cli.main import main
from alphaforge.config import apply_overrides, load_config
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.models import PhaseMetric, Run, RunError
from alphaforge.db.store import Store
from alphaforge.errors import ConfigInvalid
from alphaforge.runs.sweep import PointResult, run_sweep
from alphaforge.runs.sweep_grid import grid_configs

BASE: dict[str, Any] = {
    "symbol": "SYN", "seed": 5,
    "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 50}},
    "execution": {"allow_short": True},
    "validation": {"permutation": {"n": 10}, "bootstrap": {"n": 100},
                   "walk_forward": {"folds": 3, "mode": "fixed"}},
}
BASE_TOML = """\
symbol = "SYN"
seed = 5
[strategy]
name = "sma_cross"
params = { fast = 10, slow = 50 }
[execution]
allow_short = true
[validation.permutation]
n = 10
[validation.bootstrap]
n = 100
"""
WALK_FORWARD_TOML = """\
[validation.walk_forward]
folds = 3
mode = "fixed"
"""
POINT_KEYS = {"index", "params", "run_hash", "status", "reused"}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep_data") / "bars.csv"
    synthetic_ohlcv(400, seed=9).to_csv(path, index=False)
    return path


def _config_file(tmp_path: Path, walk_forward: bool = True) -> Path:
    path = tmp_path / "base.toml"
    path.write_text(BASE_TOML + (WALK_FORWARD_TOML if walk_forward else ""), encoding="utf-8")
    return path


def _backtest_rows(store: Store) -> dict[str, int]:
    """How many times each run executed: its "backtest" phase_metrics rows."""
    with store.session() as s:
        rows = s.execute(select(PhaseMetric.run_hash, func.count()).where(PhaseMetric.phase == "backtest")
                         .group_by(PhaseMetric.run_hash)).all()
    return {run_hash: int(n) for run_hash, n in rows}


def _run_count(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Run)) or 0)


# ------------------------------------------------------------------------------------------- grid expansion


def test_grid_configs_is_the_cartesian_product_first_axis_outermost() -> None:
    configs = grid_configs(BASE, ["strategy.params.fast=5,10,20", "strategy.params.slow=50, 100",
                                 "execution.fee_bps=1.5"])
    points = [(c["strategy"]["params"]["fast"], c["strategy"]["params"]["slow"], c["execution"]["fee_bps"])
              for c in configs]
    assert points == [(5, 50, 1.5), (5, 100, 1.5), (10, 50, 1.5), (10, 100, 1.5), (20, 50, 1.5), (20, 100, 1.5)]
    assert all(type(f) is int and type(s) is int and type(fee) is float for f, s, fee in points)
    assert BASE["strategy"]["params"] == {"fast": 10, "slow": 50} and "fee_bps" not in BASE["execution"]
    assert configs[0]["execution"]["allow_short"] is True and configs[0]["validation"] == BASE["validation"]
    configs[0]["strategy"]["params"]["fast"] = 99  # every point is an independent deep copy
    assert configs[1]["strategy"]["params"]["fast"] == 5


@pytest.mark.parametrize("axis, values", [
    ('symbol="A,B",plain , 7', ['"A,B"', "plain", "7"]),
    ("validation.walk_forward.grid.fast=[5, 10],[20]", ["[5, 10]", "[20]"]),
    ("execution.allow_short=true,false", ["true", "false"]),
    ("seed=1,null", ["1", "null"]),
    ("strategy.params={ fast = 3, slow = 9 },{fast=4}", ["{ fast = 3, slow = 9 }", "{fast=4}"]),
])
def test_grid_values_are_parsed_exactly_like_set_values(axis: str, values: list[str]) -> None:
    key = axis.partition("=")[0]
    got = grid_configs(BASE, [axis])
    assert got == [apply_overrides(BASE, [f"{key}={v}"]) for v in values]


@pytest.mark.parametrize("grid, field", [
    (["strategy.params.fast"], "strategy.params.fast"),
    (["strategy.params.fast="], "strategy.params.fast"),
    (["strategy.params.fast=5,,10"], "strategy.params.fast"),
    (["=5,10"], "grid"),
    (["strategy..fast=5"], "strategy..fast"),
    (["strategy.params.fast=5", "strategy.params.fast=10"], "strategy.params.fast"),
])
def test_malformed_grid_axes_are_refused_naming_the_key(grid: list[str], field: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        grid_configs(BASE, grid)
    assert info.value.context["field"] == field


def test_point_params_are_the_strategy_params_and_every_varying_leaf() -> None:
    configs = grid_configs(BASE, ["execution.fee_bps=1,2", "strategy.params.fast=5"])
    assert sweep_module.point_params(configs) == [
        {"strategy.params.fast": 5, "strategy.params.slow": 50, "execution.fee_bps": 1},
        {"strategy.params.fast": 5, "strategy.params.slow": 50, "execution.fee_bps": 2},
    ]


# ------------------------------------------------------------------------------------------- local pool


def test_sweep_on_two_workers_completes_every_valid_point_and_a_rerun_reuses_all(
    store: Store, db_url: str, data_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 12 points: fast=60 is invalid against both slows (4 skipped), fee 1 and 1.0 are the same run (4 skipped)
    configs = grid_configs(BASE, ["strategy.params.fast=5,10,60", "strategy.params.slow=30,50",
                                 "execution.fee_bps=1,1.0"])
    seen: list[PointResult] = []
    result = run_sweep(db_url, data_path, configs, workers=2, cache_dir=tmp_path / "cache", progress=seen.append)
    assert result.ok and result.ranked_by == "oos_sharpe"
    assert len(result.runs) == 4 and len(seen) == 4 and all(not r.reused for r in result.runs)
    assert sorted(r.index for r in result.runs) == [0, 2, 4, 6]  # first of each fee pair, fast 5 and 10
    assert {(r.params["strategy.params.fast"], r.params["strategy.params.slow"]) for r in result.runs} == \
        {(5, 30), (5, 50), (10, 30), (10, 50)}
    by_index = {r.index: r.run_hash for r in result.runs}
    assert [(s.index, s.reason) for s in result.skipped[:4]] == [
        (i, f"same run as grid point {i - 1} (run_hash {by_index[i - 1][:12]})") for i in (1, 3, 5, 7)  # type: ignore[index]
    ]
    invalid = result.skipped[4:]
    assert [s.index for s in invalid] == [8, 9, 10, 11] and all("must be < slow" in s.reason for s in invalid)
    assert invalid[0].params == {"strategy.params.fast": 60, "strategy.params.slow": 30, "execution.fee_bps": 1}
    oos = [r.oos_sharpe for r in result.runs]
    assert all(v is not None for v in oos) and oos == sorted(oos, reverse=True)  # type: ignore[type-var]
    for r in result.runs:  # the reported figures are the stored ones
        assert r.status == "completed" and r.run_hash is not None
        assert r.sharpe == pytest.approx(store.read_metrics(r.run_hash, phase="backtest")["sharpe"])
        assert r.oos_sharpe == pytest.approx(store.read_metrics(r.run_hash, phase="validation")["wf_oos_sharpe"])
        assert r.run_hash == _hash_of(configs[r.index], data_path)
    assert _backtest_rows(store) == {r.run_hash: 1 for r in result.runs} and _run_count(store) == 4

    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a worker pool was started for a fully reused sweep")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(sweep_module, "ProcessPoolExecutor", no_pool)
    again = run_sweep(db_url, data_path, configs, workers=2, cache_dir=tmp_path / "cache")
    assert all(r.reused and r.status == "completed" for r in again.runs)
    assert [(r.run_hash, r.sharpe, r.oos_sharpe) for r in again.runs] == \
        [(r.run_hash, r.sharpe, r.oos_sharpe) for r in result.runs]
    assert _backtest_rows(store) == {r.run_hash: 1 for r in result.runs} and _run_count(store) == 4


def _hash_of(raw: dict[str, Any], data_path: Path) -> str:
    from alphaforge.config import run_hash_of
    from alphaforge.data import load_ohlcv

    return run_hash_of(load_config(raw), load_ohlcv(data_path).data_hash)


def test_a_failing_point_is_reported_and_the_sweep_carries_on(db_url: str, data_path: Path, tmp_path: Path) -> None:
    # 300 walk-forward folds need 602 bars: that run fails inside the pipeline (a valid config, bad for the data)
    configs = grid_configs(BASE, ["validation.walk_forward.folds=3,300"])
    result = run_sweep(db_url, data_path, configs, workers=1, cache_dir=tmp_path / "cache")
    assert not result.ok and result.ranked_by == "oos_sharpe"
    good, bad = result.runs  # the failed run, without a metric, ranks last
    assert good.status == "completed" and good.params == {"strategy.params.fast": 10, "strategy.params.slow": 50,
                                                          "validation.walk_forward.folds": 3}
    assert bad.status == "failed" and bad.sharpe is None and bad.run_hash == _hash_of(configs[1], data_path)
    assert bad.error is not None and bad.error.startswith("DATA_INVALID: walk-forward with 300 folds")
    with Store(db_url).session() as s:
        assert s.get(Run, bad.run_hash).status == "failed"  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # pool logic; recovery SQL is tested elsewhere
def test_a_worker_killed_mid_run_is_replaced_and_its_run_recovered_and_completed(
    store: Store, db_url: str, data_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL a pool worker while it executes a run (its pid is in runs.worker): the pool breaks, the points
    not yet answered go to a fresh pool, the dead worker's run is recovered once its heartbeat is stale
    (RUN_ABANDONED) and executed again; every point ends completed."""
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", "3")  # inherited by the spawned workers
    slow = apply_overrides(BASE, ["validation.permutation.n=1000"])  # ~1 s runs: a wide window to kill in
    configs = grid_configs(slow, ["strategy.params.fast=5,10,15,20"])
    box: dict[str, Any] = {}

    def sweep() -> None:
        try:
            box["result"] = run_sweep(db_url, data_path, configs, workers=2, cache_dir=tmp_path / "cache")
        except BaseException as exc:  # noqa: BLE001 - re-raised by the assertions below
            box["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    killed: tuple[str, int] | None = None
    deadline = time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        with store.session() as s:
            row = s.execute(select(Run.run_hash, Run.worker).where(Run.status == "running",
                                                                   Run.worker.is_not(None))).first()
        if row is not None:
            pid = int(row.worker.rpartition(":")[2])
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            killed = (row.run_hash, pid)
        time.sleep(0.05)
    thread.join(timeout=240)
    assert killed is not None and not thread.is_alive() and "error" not in box, box
    result = box["result"]
    assert result.ok and len(result.runs) == 4, [r.error for r in result.runs]
    with store.session() as s:
        abandoned = set(s.scalars(select(RunError.run_hash).where(RunError.error_code == "RUN_ABANDONED")))
        assert {r.status for r in s.scalars(select(Run))} == {"completed"}
    assert killed[0] in abandoned
    finals = _phase_rows(store, "finalize")
    assert finals == {r.run_hash: 1 for r in result.runs}  # each run completed exactly once


def _die(*args: Any) -> Any:
    os._exit(13)  # a worker that dies on every task (as after an OOM kill)


def test_a_pool_that_keeps_breaking_is_restarted_a_bounded_number_of_times(
    tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_module, "run_batch", _die)  # submitted by reference: the spawned worker imports it
    configs = grid_configs(BASE, ["strategy.params.fast=5,7"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("alphaforge.runs.sweep").addHandler(handler)
    try:
        result = run_sweep(f"sqlite:///{tmp_path / 'x.db'}", data_path, configs, workers=1,
                           cache_dir=tmp_path / "cache")
    finally:
        logging.getLogger("alphaforge.runs.sweep").removeHandler(handler)
    assert [r.status for r in result.runs] == ["failed", "failed"]
    assert all(r.error is not None and r.error.startswith("WORKER_LOST: BrokenProcessPool: the worker pool broke "
                                                          f"{sweep_module.MAX_POOL_RESTARTS + 1} times")
               for r in result.runs)
    restarts = [r.getMessage() for r in records if "go to a fresh pool" in r.getMessage()]
    assert len(restarts) == sweep_module.MAX_POOL_RESTARTS and restarts[-1].endswith("(restart 2 of 2)")


def _phase_rows(store: Store, phase: str) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(PhaseMetric.run_hash, func.count()).where(PhaseMetric.phase == phase)
                         .group_by(PhaseMetric.run_hash)).all()
    return {run_hash: int(n) for run_hash, n in rows}


# ------------------------------------------------------------------------------------------- two sweeps at once


def _cli_sweep(db_url: str, config: Path, data: Path, cache: Path, grid: list[str],
               workers: int = 1) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "alphaforge.cli.main", "sweep", "--config", str(config), "--data", str(data),
            "--db", db_url, "--cache-dir", str(cache), "--workers", str(workers), "--json"]
    for axis in grid:
        argv += ["--grid", axis]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_overlapping_sweeps_at_once_execute_every_run_exactly_once(
    store: Store, db_url: str, data_path: Path, tmp_path: Path
) -> None:
    config = _config_file(tmp_path)
    # A: fast 5,10,20; B: fast 20,10,8 (reverse order, so each starts where the other ends) — 4 shared points
    a = _cli_sweep(db_url, config, data_path, tmp_path / "cache",
                   ["strategy.params.fast=5,10,20", "strategy.params.slow=30,50"])
    b = _cli_sweep(db_url, config, data_path, tmp_path / "cache",
                   ["strategy.params.fast=20,10,8", "strategy.params.slow=30,50"])
    outputs = []
    for proc in (a, b):
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        assert "database is locked" not in stderr
        outputs.append(json.loads(stdout))
    runs_a = {r["run_hash"]: r for r in outputs[0]["points"]}
    runs_b = {r["run_hash"]: r for r in outputs[1]["points"]}
    assert len(runs_a) == len(runs_b) == 6
    shared = set(runs_a) & set(runs_b)
    assert len(shared) == 4 and len(set(runs_a) | set(runs_b)) == 8
    assert all(r["status"] == "completed" for r in (*runs_a.values(), *runs_b.values()))
    for run_hash in shared:  # one sweep executed it, the other waited for it or found it done
        assert sorted([runs_a[run_hash]["reused"], runs_b[run_hash]["reused"]]) == [False, True], run_hash
    executed = [h for h, r in (*runs_a.items(), *runs_b.items()) if not r["reused"]]
    assert sorted(executed) == sorted(set(runs_a) | set(runs_b))
    assert _backtest_rows(store) == {h: 1 for h in set(runs_a) | set(runs_b)} and _run_count(store) == 8


# ------------------------------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def dask_cluster() -> Any:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_sweep_on_a_dask_local_cluster_through_the_cli(
    store: Store, db_url: str, data_path: Path, tmp_path: Path, dask_cluster: Any,
    capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path)
    argv = ["sweep", "--config", str(config), "--data", str(data_path), "--db", db_url, "--cache-dir",
            str(tmp_path / "cache"), "--scheduler", dask_cluster.scheduler_address, "--json",
            "--grid", "strategy.params.fast=5,10,60", "--grid", "strategy.params.slow=30,50"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    ran = [p for p in out["points"] if p["status"] != "skipped"]
    assert len(ran) == 4 and [f["params"]["strategy.params.fast"] for f in out["failed"]] == [60, 60]
    assert all(p["status"] == "completed" and not p["reused"] for p in ran)
    assert _backtest_rows(store) == {p["run_hash"]: 1 for p in ran}
    executed = _backtest_rows(store)
    assert main(argv) == 0  # again: every point reused
    again = json.loads(capsys.readouterr().out)
    assert all(p["reused"] for p in again["points"] if p["run_hash"]) and _backtest_rows(store) == executed


def test_scheduler_without_dask_installed_is_a_clear_config_error(
    tmp_path: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ConfigInvalid) as info:
        run_sweep(f"sqlite:///{tmp_path / 'x.db'}", data_path, [BASE], scheduler="tcp://127.0.0.1:1")
    assert "alphaforge[dask]" in info.value.message and info.value.context["field"] == "scheduler"


# ------------------------------------------------------------------------------------------- CLI


def test_cli_json_is_one_object_ranked_by_full_sample_sharpe_without_walk_forward(
    db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, walk_forward=False)
    argv = ["sweep", "--config", str(config), "--data", str(data_path), "--db", db_url, "--cache-dir",
            str(tmp_path / "cache"), "--workers", "1", "--grid", "strategy.params.fast=5,10,50"]
    assert main([*argv, "--json"]) == 0
    stdout = capsys.readouterr().out
    out = json.loads(stdout)  # exactly one JSON object: json.loads refuses trailing data
    assert isinstance(out, dict) and set(out) == {"sweep_id", "study", "points", "failed"}
    assert [p["index"] for p in out["points"]] == [0, 1, 2]
    assert all(set(p) == POINT_KEYS for p in out["points"])
    assert [p["status"] for p in out["points"]] == ["completed", "completed", "skipped"]
    assert out["failed"] == [{"index": 2, "params": {"strategy.params.fast": 50, "strategy.params.slow": 50},
                              "run_hash": None,
                              "error": "strategy.params.fast: must be < slow (50 >= 50) (strategy 'sma_cross')"}]
    assert main(argv) == 0  # human output: every point reused from the database
    human = capsys.readouterr().out
    assert "ranked by full-sample Sharpe" in human
    assert "2 runs: 0 executed, 2 reused, 0 failed; 1 skipped" in " ".join(human.split())


def test_cli_exit_codes_for_bad_sweeps(
    tmp_path: Path, data_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path)
    base = ["sweep", "--config", str(config), "--data", str(data_path), "--grid", "strategy.params.fast=5"]
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    with pytest.raises(SystemExit) as info:  # argparse: --workers and --scheduler are exclusive
        main([*base, *db, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert info.value.code == 2
    assert main([*base, *db, "--workers", "0"]) == 2
    assert "--workers 0: must be >= 1" in capsys.readouterr().err
    assert main([*base, "--db", "sqlite://"]) == 2
    assert "in-memory SQLite" in capsys.readouterr().err
    assert main([*base[:-1], "strategy.params.fast", *db]) == 2
    assert "expected dotted.key=v1,v2" in capsys.readouterr().err
    assert main(["sweep", "--config", str(config), "--data", str(tmp_path / "nope.csv"), *db,
                 "--grid", "strategy.params.fast=5"]) == 2
    assert "no such file" in capsys.readouterr().err
