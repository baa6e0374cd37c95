"""Commands that only read never depend on execution settings.

``runs list/show/export/plot`` and ``verify`` go through :mod:`alphaforge.runs.queries`, which never constructs
the pipeline: a setting that only matters to a worker executing runs (``$ALPHAFORGE_STALE_AFTER_S``) cannot
make them fail, while ``run`` still refuses it before writing anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_cli import CONFIG_TOML, N_BARS, _entry_point, _env, assert_one_line_error, ok_json, query
from test_pipeline import small_config

from alphaforge.data import dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.store import Store
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.queries import show_run


def cli_with_bad_stale(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_entry_point(), *args], cwd=cwd, env=_env(ALPHAFORGE_STALE_AFTER_S="soon"),
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def stored_run(db_url: str, tmp_path: Path) -> str:
    dataset = dataset_from_frame(synthetic_ohlcv(N_BARS), source="synthetic")
    outcome = Pipeline(Store(db_url), cache_dir=tmp_path / "cache").run(small_config(), dataset)
    return outcome.run.run_hash


def test_reading_commands_ignore_a_bad_staleness_setting(db_url: str, stored_run: str, tmp_path: Path) -> None:
    prefix = stored_run[:12]
    listed = ok_json(cli_with_bad_stale(tmp_path, "runs", "list", "--db", db_url, "--json"))
    assert [r["run_hash"] for r in listed["runs"]] == [stored_run]
    shown = ok_json(cli_with_bad_stale(tmp_path, "runs", "show", prefix, "--db", db_url, "--json"))
    assert shown["run_hash"] == stored_run and shown["status"] == "completed"
    assert shown == show_run(Store(db_url), stored_run) | {"run_hash": stored_run}
    exported = ok_json(cli_with_bad_stale(tmp_path, "runs", "export", prefix, "--db", db_url,
                                          "--out", str(tmp_path / "out"), "--json"))
    assert exported["run_hash"] == stored_run and (tmp_path / "out" / "equity.parquet").is_file()
    verified = cli_with_bad_stale(tmp_path, "verify", prefix, "--db", db_url,
                                  "--cache-dir", str(tmp_path / "cache"))
    assert verified.returncode == 0, verified.stderr


def test_executing_a_run_still_refuses_the_bad_setting(db_url: str, tmp_path: Path) -> None:
    synthetic_ohlcv(N_BARS).to_csv(tmp_path / "bars.csv", index=False)
    (tmp_path / "config.toml").write_text(CONFIG_TOML, encoding="utf-8")
    proc = cli_with_bad_stale(tmp_path, "run", "--db", db_url, "--config", "config.toml", "--data", "bars.csv")
    line = assert_one_line_error(proc, 2, "CONFIG_INVALID")
    assert "ALPHAFORGE_STALE_AFTER_S" in line
    assert query(db_url, "SELECT count(*) FROM runs") == [(0,)]
