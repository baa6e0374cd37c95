"""Sweeps recorded as families (studies, sweeps, points) and their stored family report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from alphaforge.cli.main import main
from alphaforge.config import load_config
from alphaforge.data import load_ohlcv
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.models import FamilyReport, Study, Sweep, SweepPoint
from alphaforge.db.store import Store
from alphaforge.hashing import hash_obj, seed_from_hex
from alphaforge.runs.family import (
    ReportParams,
    benchmark_returns,
    family_report,
    family_seed,
    resolve_family,
    returns_matrix,
)
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.study import default_study_name
from alphaforge.selection import sharpe_per_bar

BASE_TOML = """\
symbol = "FAM"
seed = 11
[strategy]
name = "sma_cross"
params = { fast = 5, slow = 40 }
[validation.permutation]
n = 0
[validation.bootstrap]
n = 0
"""
GRID = ["--grid", "strategy.params.fast=3,5,8", "--grid", "strategy.params.slow=20,40"]
POINT_KEYS = {"index", "params", "run_hash", "status", "reused"}
REPORT_KEYS = {"study", "sweep_ids", "n_trials", "best", "psr", "dsr", "min_trl_years", "pbo", "spa", "stepm"}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("family_data") / "bars.csv"
    synthetic_ohlcv(600, seed=21).to_csv(path, index=False)
    return path


ERR: dict[str, str] = {}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run the CLI; ``(exit code, stdout parsed as JSON when it is)``; its stderr is kept in ``ERR["last"]``."""
    code = main(list(argv))
    captured = capsys.readouterr()
    ERR["last"] = captured.err
    out = captured.out
    return code, json.loads(out) if out.strip().startswith("{") else out


def _sweep(capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path, data: Path, *extra: str,
           grid: list[str] | None = None, toml: str = BASE_TOML) -> tuple[int, Any]:
    config = tmp_path / "base.toml"
    config.write_text(toml, encoding="utf-8")
    return _cli(capsys, "sweep", "--config", str(config), *(grid or GRID), "--data", str(data), "--db", db_url,
                "--workers", "1", "--cache-dir", str(tmp_path / "cache"), "--json", *extra)


def test_a_sweep_is_recorded_in_its_default_study_and_a_rerun_reuses_every_point(
    db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _sweep(capsys, db_url, tmp_path, data_path)
    assert code == 0 and set(doc) == {"sweep_id", "study", "points", "failed"} and doc["failed"] == []
    data_hash = load_ohlcv(data_path).data_hash
    assert doc["study"] == default_study_name("FAM", "sma_cross", data_hash) == f"FAM/sma_cross/{data_hash[:12]}"
    assert [p["index"] for p in doc["points"]] == list(range(6))
    assert all(set(p) == POINT_KEYS and p["status"] == "completed" and not p["reused"] for p in doc["points"])
    assert doc["points"][1]["params"] == {"strategy.params.fast": 3, "strategy.params.slow": 40}
    store = Store(db_url)
    with store.read_session() as s:
        sweep = s.get(Sweep, doc["sweep_id"])
        assert sweep is not None and sweep.status == "completed" and sweep.n_points == 6
        assert json.loads(sweep.grid_json) == [["strategy.params.fast", [3, 5, 8]], ["strategy.params.slow", [20, 40]]]
        study = s.get(Study, doc["study"])
        assert study is not None and (study.data_hash, study.strategy, study.symbol) == (data_hash, "sma_cross", "FAM")
        points = list(s.scalars(select(SweepPoint).where(SweepPoint.sweep_id == doc["sweep_id"])
                                .order_by(SweepPoint.point_index)))
    assert [(p.point_index, p.run_hash, json.loads(p.params_json)) for p in points] == \
        [(p["index"], p["run_hash"], p["params"]) for p in doc["points"]]
    expected_id = hash_obj({"base_config": {"symbol": "FAM", "seed": 11,
                                            "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 40}},
                                            "validation": {"permutation": {"n": 0}, "bootstrap": {"n": 0}}},
                            "grid": [["strategy.params.fast", [3, 5, 8]], ["strategy.params.slow", [20, 40]]],
                            "data_hash": data_hash})
    assert doc["sweep_id"] == expected_id

    code, again = _sweep(capsys, db_url, tmp_path, data_path)
    assert code == 0 and again["sweep_id"] == doc["sweep_id"] and again["study"] == doc["study"]
    assert [p["run_hash"] for p in again["points"]] == [p["run_hash"] for p in doc["points"]]
    assert all(p["reused"] for p in again["points"])

    code, shown = _cli(capsys, "runs", "show", doc["points"][2]["run_hash"], "--db", db_url, "--json")
    assert code == 0 and shown["sweeps"] == [{"sweep_id": doc["sweep_id"], "study": doc["study"], "point_index": 2}]
    code, text = _cli(capsys, "runs", "show", doc["points"][2]["run_hash"][:12], "--db", db_url)
    assert code == 0 and f"point 2 of sweep {doc['sweep_id'][:12]} in study {doc['study']!r}" in text


def test_invalid_and_repeated_points_are_recorded_without_a_new_run(
    db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fast 50 >= slow 40 is invalid; fee 1 and 1.0 are the same run
    code, doc = _sweep(capsys, db_url, tmp_path, data_path,
                       grid=["--grid", "strategy.params.fast=5,50", "--grid", "execution.fee_bps=1,1.0"])
    assert code == 0
    points = {p["index"]: p for p in doc["points"]}
    assert points[1]["run_hash"] == points[0]["run_hash"] and points[1]["reused"]
    assert points[2]["status"] == points[3]["status"] == "skipped" and points[2]["run_hash"] is None
    assert [(f["index"], f["run_hash"]) for f in doc["failed"]] == [(2, None), (3, None)]
    assert "must be < slow" in doc["failed"][0]["error"]
    with Store(db_url).read_session() as s:
        rows = {p.point_index: (p.run_hash, p.skip_reason) for p in s.scalars(select(SweepPoint))}
    assert rows[1] == (points[0]["run_hash"], None) and rows[2][0] is None and "must be < slow" in rows[2][1]


def test_a_study_is_one_dataset_and_one_strategy(
    db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sweep(capsys, db_url, tmp_path, data_path, "--study", "mine")[0] == 0
    other = BASE_TOML.replace('name = "sma_cross"', 'name = "ema_cross"').replace("fast = 5, slow = 40",
                                                                                    "fast = 5, slow = 20")
    code, _ = _sweep(capsys, db_url, tmp_path, data_path, "--study", "mine", toml=other,
                     grid=["--grid", "strategy.params.fast=3,5"])
    err = ERR["last"]
    assert code == 2 and "error [CONFIG_INVALID]: --study 'mine' is a study of strategy 'sma_cross'" in err
    bars = tmp_path / "other.csv"
    synthetic_ohlcv(600, seed=22).to_csv(bars, index=False)
    code, _ = _sweep(capsys, db_url, tmp_path, bars, "--study", "mine")
    assert code == 2 and "a study is one dataset and one strategy" in ERR["last"]
    code, _ = _sweep(capsys, db_url, tmp_path, data_path, grid=["--grid", "strategy.name=sma_cross,ema_cross"])
    assert code == 2 and "--grid varies the strategy" in ERR["last"]
    with Store(db_url).read_session() as s:
        assert [w.study for w in s.scalars(select(Sweep))] == ["mine"]


def test_the_report_is_the_issue_document_stored_and_recomputed_only_when_the_family_changes(
    db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first = _sweep(capsys, db_url, tmp_path, data_path, "--study", "fam")
    assert code == 0
    code, report = _cli(capsys, "sweep", "report", "fam", "--db", db_url, "--json", "--reps", "200",
                        "--blocks", "4")
    assert code == 0 and set(report) == REPORT_KEYS
    assert report["study"] == "fam" and report["sweep_ids"] == [first["sweep_id"]] and report["n_trials"] == 6
    assert set(report["pbo"]) >= {"value", "n_splits", "logit_mean", "degradation_slope"}
    assert report["pbo"]["n_splits"] == 6 and report["pbo"]["informative"] is False  # 6 < 10 configurations
    assert set(report["spa"]) == {"benchmark", "pvalue_lower", "pvalue_consistent", "pvalue_upper",
                                  "reality_check_pvalue"} and report["spa"]["benchmark"] == "buy_and_hold"
    assert report["stepm"]["alpha"] == 0.05 and set(report["stepm"]["significant"]) <= \
        {p["run_hash"] for p in first["points"]}
    store = Store(db_url)
    sharpe = {p["run_hash"]: store.read_metrics(p["run_hash"], phase="backtest")["sharpe"] for p in first["points"]}
    members = sorted(sharpe)
    per_bar = sharpe_per_bar(returns_matrix(store, members, load_ohlcv(data_path).n_bars))
    best = members[int(np.argmax(per_bar))]
    assert best == max(sharpe, key=lambda h: sharpe[h])  # the stored metric ranks the same way here
    assert report["best"]["run_hash"] == best and report["best"]["sharpe"] == sharpe[best]
    assert report["best"]["params"] == next(p["params"] for p in first["points"] if p["run_hash"] == best)
    for key in ("psr", "dsr"):
        assert 0.0 <= report[key] <= 1.0
    with store.read_session() as s:
        rows = list(s.scalars(select(FamilyReport)))
    assert len(rows) == 1 and rows[0].scope == "study" and rows[0].sweep_id is None and rows[0].n_trials == 6
    assert rows[0].seed == family_seed("fam") == seed_from_hex(hash_obj({"study": "fam"}))
    assert rows[0].family_hash == hash_obj(sorted(sharpe))
    assert json.loads(rows[0].report_json) == report
    created = rows[0].created_at

    again = family_report(store, "fam", ReportParams(reps=200, n_blocks=4))
    assert again.reused and again.report == report
    code, human = _cli(capsys, "sweep", "report", "fam", "--db", db_url, "--reps", "200", "--blocks", "4")
    assert code == 0 and "stored report" in human and ("likely genuine" in human or "likely selection luck" in human)

    # a second sweep in the study: more trials, the study's report is recomputed, the first sweep's is its own
    code, second = _sweep(capsys, db_url, tmp_path, data_path, "--study", "fam",
                          grid=["--grid", "strategy.params.fast=4,6", "--grid", "strategy.params.slow=30"])
    assert code == 0
    grown = family_report(store, "fam", ReportParams(reps=200, n_blocks=4))
    assert not grown.reused and grown.report["n_trials"] == 8
    assert grown.report["sweep_ids"] == [first["sweep_id"], second["sweep_id"]]
    with store.read_session() as s:
        row = s.get(FamilyReport, rows[0].report_key)
        assert row is not None and row.n_trials == 8 and row.created_at >= created
    only_first = family_report(store, first["sweep_id"][:10], ReportParams(reps=200, n_blocks=4))
    assert only_first.report["n_trials"] == 6 and only_first.report["sweep_ids"] == [first["sweep_id"]]
    # the same bootstrap (the study's seed) on the same family gives the same numbers
    assert only_first.report["spa"] == report["spa"] and only_first.report["pbo"] == report["pbo"]


def test_report_inputs_are_the_stored_equity_returns_and_buy_and_hold_of_the_dataset(
    db_url: str, empty_db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _sweep(capsys, db_url, tmp_path, data_path)
    assert code == 0
    store = Store(db_url)
    family = resolve_family(store, doc["sweep_id"])
    dataset = load_ohlcv(data_path)
    matrix = returns_matrix(store, [m.run_hash for m in family.members], dataset.n_bars)
    for j, member in enumerate(family.members):
        equity = store.read_equity(member.run_hash)["equity"].to_numpy(dtype=np.float64)
        expected = np.zeros(len(equity))
        expected[1:] = equity[1:] / equity[:-1] - 1.0
        np.testing.assert_array_equal(matrix[:, j], expected)
        # the stored Sharpe comes from the float64 returns; the float32 equity reproduces it closely
        bpy = store.read_metrics(member.run_hash, phase="load")["bars_per_year"]
        ours = matrix[:, j].mean() / matrix[:, j].std(ddof=1) * math.sqrt(bpy)
        assert ours == pytest.approx(member.sharpe, rel=1e-3, abs=1e-4)
    bench, bpy = benchmark_returns(store, dataset, family.members[0].run_hash)
    config = load_config({"symbol": "FAM", "seed": 11, "strategy": {"name": "buy_and_hold"}})
    single = Store(empty_db_url)
    outcome = Pipeline(single, cache_dir=tmp_path / "cache_b").run(config, dataset)
    equity = single.read_equity(outcome.run.run_hash)["equity"].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(bench[1:], equity[1:] / equity[:-1] - 1.0)
    assert bench[0] == 0.0 and bpy == single.read_metrics(outcome.run.run_hash, phase="load")["bars_per_year"]


def test_report_refusals(db_url: str, data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _sweep(capsys, db_url, tmp_path, data_path, grid=["--grid", "strategy.params.fast=3"])
    assert code == 0
    code, _ = _cli(capsys, "sweep", "report", doc["sweep_id"], "--db", db_url)
    assert code == 2 and "1 completed configuration(s); the family statistics need at least 2" in \
        ERR["last"]
    _sweep(capsys, db_url, tmp_path, data_path)
    code, _ = _cli(capsys, "sweep", "report", doc["study"], "--db", db_url, "--blocks", "3")
    assert code == 2 and "--blocks 3: PBO needs an even number of blocks >= 4" in ERR["last"]
    code, _ = _cli(capsys, "sweep", "report", "no-such-study", "--db", db_url)
    assert code == 2 and "names no sweep and no study" in ERR["last"]
    code, listed = _cli(capsys, "sweep", "report", "--list", "--db", db_url, "--json")
    assert code == 0 and [s["study"] for s in listed["studies"]] == [doc["study"]]
    assert len(listed["studies"][0]["sweeps"]) == 2
    code, _ = _cli(capsys, "sweep", "--db", db_url)
    assert code == 2 and "a grid run needs --config, --grid, --data" in ERR["last"]


def test_the_readme_worked_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands of the README's "Sweeps and overfitting" example, run in a fresh directory, name the study
    the README names and report its best point."""
    import re
    import shlex

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Sweeps and overfitting"):readme.index("## PostgreSQL and many workers")]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [shlex.split(c.split("#")[0]) for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    monkeypatch.chdir(tmp_path)
    outputs = []
    for argv in commands:
        assert argv[0] == "alphaforge"
        assert main(argv[1:]) == 0, (argv, ERR.get("last"))
        outputs.append(capsys.readouterr().out)
    (shown,) = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    study = re.search(r"study '([^']+)'", shown).group(1)  # type: ignore[union-attr]
    assert commands[-1][3] == study and f"study {study!r}" in outputs[1]
    best = re.search(r"best point\s+(\w{12}) \((.*?)\)", shown)
    assert best is not None and best.group(1) in outputs[-1]
    assert all(token in outputs[-1] for token in best.group(2).split())  # the table may wrap the params
    assert shown.splitlines()[-1].split(" (")[0] in " ".join(outputs[-1].split())
