"""Methodology versions in the run identity: a bump gives a new run, old runs stay readable and verify (both
backends). A "pre-versioning" run is recorded exactly as the code before versioning recorded it: no
``methodology`` in the manifest and the legacy ``hash_obj({"config", "data_hash"})`` identity."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.models import Run
from alphaforge.db.store import Store
from alphaforge.hashing import hash_obj
from alphaforge.methodology import METHODOLOGY, UNVERSIONED, identity_hash
from alphaforge.runs import pipeline as pipeline_module
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.provenance import NewRun, new_run
from alphaforge.runs.queries import show_run
from alphaforge.runs.verify import verify_run


def config() -> RunConfig:
    return load_config({"symbol": "SYN", "seed": 3, "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
                        "validation": {"permutation": {"n": 10}, "bootstrap": {"n": 50}}})


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(300))


def _row(store: Store, run_hash: str) -> dict[str, Any]:
    with store.read_session() as s:
        run = s.scalars(select(Run).where(Run.run_hash == run_hash)).one()
        return {"status": run.status, "manifest": run.manifest_json, "config": run.config_json,
                "updated_at": run.updated_at}


def test_a_version_bump_gives_a_new_run_and_leaves_the_old_one_verifiable(
        store: Store, tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipeline(store, cache_dir=tmp_path / "cache")
    old = pipe.run(config(), dataset)
    assert old.run.manifest["methodology"] == METHODOLOGY
    assert old.run.run_hash == identity_hash(config().to_dict(), dataset.data_hash, METHODOLOGY)
    before = _row(store, old.run.run_hash)
    metrics_before = store.read_all_metrics(old.run.run_hash)

    monkeypatch.setitem(METHODOLOGY, "metrics", "99.0.0")  # the one registry: bump a number there
    new = pipe.run(config(), dataset)
    assert new.run.run_hash != old.run.run_hash and not new.reused  # never reused across versions
    assert new.run.manifest["methodology"]["metrics"] == "99.0.0"
    again = pipe.run(config(), dataset)
    assert again.reused and again.run.run_hash == new.run.run_hash  # same versions: reused

    assert _row(store, old.run.run_hash) == before  # the old run is untouched
    assert store.read_all_metrics(old.run.run_hash) == metrics_before
    for run_hash in (old.run.run_hash, new.run.run_hash):
        report = verify_run(store, run_hash, cache_dir=tmp_path / "cache")
        assert report.ok, report.failures
    assert show_run(store, old.run.run_hash)["methodology"]["metrics"] == "2.0.0"
    assert show_run(store, new.run.run_hash)["methodology"]["metrics"] == "99.0.0"


def _legacy(config: RunConfig, dataset: Dataset) -> NewRun:
    """What the code before methodology versions recorded for a run."""
    current = new_run(config, dataset)
    manifest = {k: v for k, v in current.manifest.items() if k != "methodology"}
    return dataclasses.replace(current, manifest=manifest,
                               run_hash=hash_obj({"config": current.config, "data_hash": current.data_hash}))


def test_a_pre_versioning_run_is_shown_verified_and_never_reused(
        store: Store, tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipeline(store, cache_dir=tmp_path / "cache")
    with monkeypatch.context() as m:
        m.setattr(pipeline_module, "new_run", _legacy)
        legacy = pipe.run(config(), dataset)
    assert "methodology" not in legacy.run.manifest
    report = verify_run(store, legacy.run.run_hash, cache_dir=tmp_path / "cache")
    assert report.ok, report.failures
    assert UNVERSIONED in next(c.detail for c in report.checks if c.check == "identity.run_hash")
    shown = show_run(store, legacy.run.run_hash)
    assert shown["methodology"] == UNVERSIONED
    assert shown["bars_per_year"] == {"value": 252.0, "source": "inferred"}

    current = pipe.run(config(), dataset)
    assert current.run.run_hash != legacy.run.run_hash and not current.reused
    assert show_run(store, current.run.run_hash)["methodology"] == METHODOLOGY


def test_verify_catches_a_tampered_methodology(store: Store, tmp_path: Path, dataset: Dataset) -> None:
    from sqlalchemy import update

    from alphaforge.hashing import canonical_json

    done = Pipeline(store, cache_dir=tmp_path / "cache").run(config(), dataset)
    manifest = {**done.run.manifest, "methodology": {**METHODOLOGY, "bootstrap": "1.0.0"}}
    with store.session() as s:
        s.execute(update(Run).where(Run.run_hash == done.run.run_hash).values(manifest_json=canonical_json(manifest)))
    report = verify_run(store, done.run.run_hash, cache_dir=tmp_path / "cache")
    assert [c.check for c in report.failures] == ["identity.run_hash"]


def test_runs_show_prints_bars_per_year_and_the_methodology(
        store: Store, db_url: str, tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    from alphaforge.cli.main import main

    done = Pipeline(store, cache_dir=tmp_path / "cache").run(config(), dataset)
    capsys.readouterr()
    assert main(["runs", "show", done.run.run_hash[:12], "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "bars_per_year 252.0 (inferred)" in out
    assert "methodology " + ", ".join(f"{k} {v}" for k, v in sorted(METHODOLOGY.items())) in out
