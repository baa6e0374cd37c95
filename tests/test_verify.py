"""`alphaforge verify`: a clean run verifies; every kind of tampering is caught and named (both backends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, select, update

import alphaforge
from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.models import Equity, FeaturesCacheMeta, Run
from alphaforge.db.store import Store
from alphaforge.errors import ConfigInvalid, RunNotFound
from alphaforge.hashing import canonical_json, sha256_file
from alphaforge.runs.pipeline import Pipeline, RunOutcome
from alphaforge.runs.queries import export_run
from alphaforge.runs.verify import VerifyReport, validation_checks, verify_export, verify_run

REPO = Path(alphaforge.__file__).resolve().parent.parent
N_BARS = 400


def small_config(**over: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "symbol": "SYN", "seed": 11,
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "execution": {"allow_short": True},
        "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 100}},
    }
    raw.update(over)
    return load_config(raw)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(N_BARS))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def outcome(store: Store, cache_dir: Path, dataset: Dataset) -> RunOutcome:
    done = Pipeline(store, cache_dir=cache_dir).run(small_config(), dataset)
    assert done.run.status == "completed" and len(done.run.manifest["features"]) == 2
    return done


def feature_path(cache_dir: Path, outcome: RunOutcome, i: int = 0) -> Path:
    meta_hash = outcome.run.manifest["features"][i]["meta_hash"]
    return cache_dir / meta_hash[:2] / f"{meta_hash}.parquet"


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def failed(report: VerifyReport) -> dict[str, str]:
    return {c.check: c.detail for c in report.failures}


EXPECTED_CHECKS = {
    "identity.run_hash", "identity.seeds", "identity.data_hash", "status",
    "feature.file[sma_5]", "feature.row[sma_5]", "feature.file[sma_20]", "feature.row[sma_20]",
    "rows.equity", "rows.trades", "rows.validation",
    "validation.coherence", "validation.pvalue", "validation.ci", "equity.ts", "trades.ts",
}


def test_clean_run_verifies(store: Store, cache_dir: Path, outcome: RunOutcome) -> None:
    run_hash = outcome.run.run_hash
    report = verify_run(store, run_hash[:10], cache_dir=cache_dir)  # a unique prefix is enough
    assert report.ok, failed(report)
    assert report.run_hash == run_hash
    assert {c.check for c in report.checks} == EXPECTED_CHECKS
    doc = report.to_json()
    assert doc["ok"] is True and all(set(c) == {"check", "ok", "detail"} for c in doc["checks"])
    with pytest.raises(RunNotFound):
        verify_run(store, "f" * 64, cache_dir=cache_dir)


def test_flipped_byte_in_cached_feature_fails_naming_the_file(
    store: Store, cache_dir: Path, outcome: RunOutcome
) -> None:
    path = feature_path(cache_dir, outcome, 0)
    flip_byte(path)
    report = verify_run(store, outcome.run.run_hash, cache_dir=cache_dir)
    assert not report.ok
    assert list(failed(report)) == ["feature.file[sma_5]"]
    assert str(path) in failed(report)["feature.file[sma_5]"]
    assert "sha256" in failed(report)["feature.file[sma_5]"]


def test_deleted_feature_file_fails(store: Store, cache_dir: Path, outcome: RunOutcome) -> None:
    path = feature_path(cache_dir, outcome, 1)
    path.unlink()
    report = verify_run(store, outcome.run.run_hash, cache_dir=cache_dir)
    assert list(failed(report)) == ["feature.file[sma_20]"]
    assert str(path) in failed(report)["feature.file[sma_20]"] and "missing" in failed(report)["feature.file[sma_20]"]
    # the wrong cache directory: every feature file is missing
    elsewhere = verify_run(store, outcome.run.run_hash, cache_dir=cache_dir.parent / "other")
    assert set(failed(elsewhere)) == {"feature.file[sma_5]", "feature.file[sma_20]"}


def test_deleted_equity_rows_fail_the_row_count(store: Store, cache_dir: Path, outcome: RunOutcome) -> None:
    run_hash = outcome.run.run_hash
    with store.session() as s:
        ts = list(s.scalars(select(Equity.ts).where(Equity.run_hash == run_hash).order_by(Equity.ts).limit(3)))
        s.execute(delete(Equity).where(Equity.run_hash == run_hash, Equity.ts.in_(ts)))
    report = verify_run(store, run_hash, cache_dir=cache_dir)
    assert list(failed(report)) == ["rows.equity"]
    assert f"{N_BARS - 3} equity rows" in failed(report)["rows.equity"]
    assert f"n_bars {N_BARS}" in failed(report)["rows.equity"]


def test_tampered_rows_and_identity_are_caught(store: Store, cache_dir: Path, outcome: RunOutcome) -> None:
    run_hash = outcome.run.run_hash

    def verify_after(**values: Any) -> dict[str, str]:
        with store.session() as s:
            before = {k: getattr(s.get(Run, run_hash), k) for k in values}
            s.execute(update(Run).where(Run.run_hash == run_hash).values(**values))
        try:
            return failed(verify_run(store, run_hash, cache_dir=cache_dir))
        finally:
            with store.session() as s:
                s.execute(update(Run).where(Run.run_hash == run_hash).values(**before))

    config = dict(outcome.run.config, symbol="OTHER")
    assert "identity.run_hash" in verify_after(config_json=canonical_json(config))
    assert "identity.seeds" in verify_after(bootstrap_seed=(outcome.run.bootstrap_seed + 1) % 2**32)
    manifest = dict(outcome.run.manifest, data_hash="0" * 64)
    assert set(verify_after(manifest_json=canonical_json(manifest))) == {"identity.data_hash"}
    assert "identity.manifest" in verify_after(manifest_json="{not json")
    assert "status" in verify_after(status="failed")
    assert verify_run(store, run_hash, cache_dir=cache_dir).ok  # everything restored

    meta_hash = outcome.run.manifest["features"][0]["meta_hash"]
    with store.session() as s:
        s.execute(update(FeaturesCacheMeta).where(FeaturesCacheMeta.meta_hash == meta_hash).values(digest="e" * 64))
    assert list(failed(verify_run(store, run_hash, cache_dir=cache_dir))) == ["feature.row[sma_5]"]


def test_validation_coherence_rules(store: Store) -> None:
    """The schema's CHECKs are judged by the database (both backends); verify adds finiteness, p > 0 and
    NULL-exactly-when-disabled."""
    config = {"validation": {"permutation": {"n": 20}, "bootstrap": {"n": 100}}}
    good = {"bootstrap_method": "hadj_bb", "bootstrap_block_length": 3, "bootstrap_jitter": 1, "bootstrap_fallback": 0,
            "permutation_pvalue": 0.5, "bootstrap_sharpe_low": -0.1, "bootstrap_sharpe_high": 0.2,
            "bootstrap_cagr_low": -0.01, "bootstrap_cagr_high": 0.03}
    assert all(ok for _, ok, _ in validation_checks(store, good, config))

    def bad(**row: Any) -> set[str]:
        return {check for check, ok, _ in validation_checks(store, {**good, **row}, config) if not ok}

    assert bad(bootstrap_method="simple") == {"validation.coherence"}  # simple with a block length
    assert bad(bootstrap_method="hadj_bb", bootstrap_block_length=None) == {"validation.coherence"}
    assert bad(bootstrap_fallback=2) == {"validation.coherence"}
    # the rule is the schema's CHECK, judged by the database, and the detail names it
    details = {check: detail for check, _, detail in validation_checks(store, {**good, "bootstrap_method": "x"}, config)}
    assert "ck_validation_bootstrap_method_enum" in details["validation.coherence"]
    assert bad(permutation_pvalue=0.0) == {"validation.pvalue"}
    assert bad(permutation_pvalue=1.5) == {"validation.pvalue"}
    assert bad(permutation_pvalue=None) == {"validation.pvalue"}  # the permutation test ran (n = 20)
    assert bad(bootstrap_sharpe_low=0.3) == {"validation.ci"}
    assert bad(bootstrap_cagr_low=None, bootstrap_cagr_high=None) == {"validation.ci"}
    assert bad(bootstrap_sharpe_high=float("nan")) == {"validation.ci"}
    disabled = {"validation": {"permutation": {"n": 0}, "bootstrap": {"n": 0}}}
    nulls = {**good, "permutation_pvalue": None, "bootstrap_sharpe_low": None, "bootstrap_sharpe_high": None,
             "bootstrap_cagr_low": None, "bootstrap_cagr_high": None}
    assert all(ok for _, ok, _ in validation_checks(store, nulls, disabled))


def test_export_verifies_and_tampering_is_caught(
    store: Store, cache_dir: Path, outcome: RunOutcome, tmp_path: Path
) -> None:
    run_hash, out = outcome.run.run_hash, tmp_path / "export"
    export_run(store, run_hash, out)
    clean = verify_export(out, store=store, run_hash=run_hash)
    assert clean.ok, failed(clean)
    assert {c.check for c in clean.checks} >= {
        "export.manifest", "export.file[trades.parquet]", "export.file[equity.parquet]",
        "export.content[trades.parquet]", "export.content[equity.parquet]", "export.identity"}
    assert "export.identity" in failed(verify_export(out, run_hash="a" * 64))  # an export of another run

    # a consistent but false export: equity changed and its sha256 re-recorded in manifest.json
    frame = pd.read_parquet(out / "equity.parquet")
    frame.loc[10, "equity"] += 1.0
    frame.to_parquet(out / "equity.parquet", index=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["equity.parquet"]["sha256"] = sha256_file(out / "equity.parquet")
    (out / "manifest.json").write_text(canonical_json(manifest))
    assert verify_export(out).ok  # self-consistent on its own ...
    assert list(failed(verify_export(out, store=store, run_hash=run_hash))) == ["export.content[equity.parquet]"]

    export_run(store, run_hash, out)  # fresh again, then flip one byte of the trades file
    flip_byte(out / "trades.parquet")
    report = verify_export(out, store=store, run_hash=run_hash)
    assert list(failed(report)) == ["export.file[trades.parquet]"]
    assert str(out / "trades.parquet") in failed(report)["export.file[trades.parquet]"]
    (out / "manifest.json").unlink()
    with pytest.raises(ConfigInvalid, match="manifest.json"):
        verify_export(out)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "alphaforge.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_cli_exit_codes(db_url: str, store: Store, cache_dir: Path, outcome: RunOutcome, tmp_path: Path) -> None:
    run_hash, out = outcome.run.run_hash, tmp_path / "export"
    export_run(store, run_hash, out)
    common = ("--db", db_url, "--cache-dir", str(cache_dir))
    with ThreadPoolExecutor(2) as pool:  # independent: run them side by side
        ok_f = pool.submit(_cli, "verify", run_hash[:12], "--export", str(out), *common, "--json", cwd=tmp_path)
        unknown_f = pool.submit(_cli, "verify", "f" * 64, *common, cwd=tmp_path)
    ok, unknown = ok_f.result(), unknown_f.result()
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["ok"] is True and [r["run_hash"] for r in doc["runs"]] == [run_hash]
    assert {c["check"] for c in doc["runs"][0]["checks"]} >= EXPECTED_CHECKS | {"export.identity"}
    assert ok.stderr == ""
    assert unknown.returncode == 2 and unknown.stderr.startswith("error [RUN_NOT_FOUND]")

    path = feature_path(cache_dir, outcome, 0)
    flip_byte(path)
    bad = _cli("verify", "--all", *common, cwd=tmp_path)  # human output
    assert bad.returncode == 1, bad.stderr
    assert "✗" in bad.stdout and "feature.file[sma_5]" in bad.stdout and "✓" in bad.stdout
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error [INTEGRITY_MISMATCH]"), bad.stderr
    assert "feature.file[sma_5]" in lines[0] and path.name in lines[0]
