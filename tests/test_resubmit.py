"""The resubmission fast path (:mod:`alphaforge.runs.resubmit`) on real databases: the very run and output of the
slow path; a file is recognised by its bytes only (never by its name or modification time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import alphaforge.runs.pipeline as pipeline_module
from alphaforge.config import load_config, run_hash_of
from alphaforge.data import load_ohlcv
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.store import Store
from alphaforge.runs import resubmit
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.resubmit import config_digest, find_completed, known_data_hash, remember_config

RAW: dict[str, Any] = {
    "symbol": "SYN", "seed": 11,
    "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
    "execution": {"allow_short": True},
    "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 100}, "walk_forward": {"folds": 3}},
}
N_BARS = 600


def _bars(path: Path, seed: int = 3) -> Path:
    synthetic_ohlcv(N_BARS, seed=seed).to_csv(path, index=False)
    return path


def _first_run(store: Store, tmp_path: Path, data: Path) -> Any:
    """The slow path, as ``alphaforge run`` takes it: validate the config, record it, run the pipeline."""
    config = load_config(RAW)
    remember_config(store, RAW, config)
    return Pipeline(store, cache_dir=tmp_path / "cache").run(config, data)


def test_the_fast_path_answers_the_slow_path_s_run_and_output(store: Store, tmp_path: Path) -> None:
    data = _bars(tmp_path / "bars.csv")
    assert find_completed(store, RAW, data) is None  # nothing recorded yet
    first = _first_run(store, tmp_path, data)
    assert not first.reused
    fast = find_completed(store, RAW, data)
    assert fast is not None and fast.reused
    # the slow path's answer to the same resubmission: load the file, hash it, find the run
    slow = Pipeline(store, cache_dir=tmp_path / "cache").run(load_config(RAW), load_ohlcv(data))
    assert slow.reused
    assert fast.to_json() == slow.to_json() == {**first.to_json(), "reused": True}
    assert fast.run.run_hash == run_hash_of(load_config(RAW), load_ohlcv(data).data_hash)


def test_a_changed_file_with_the_same_name_size_and_mtime_is_not_recognised(store: Store, tmp_path: Path) -> None:
    data = _bars(tmp_path / "bars.csv")
    first = _first_run(store, tmp_path, data)
    before = data.stat()
    text = data.read_text()
    header, first_bar, rest = text.split("\n", 2)
    fields = first_bar.split(",")
    volume = fields[-1]
    fields[-1] = str((int(volume) + 1) % 10 ** len(volume)).zfill(len(volume))  # same width, another volume
    data.write_text("\n".join([header, ",".join(fields), rest]))
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = data.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert data.read_text() != text

    assert known_data_hash(store, data) is None
    assert find_completed(store, RAW, data) is None
    again = Pipeline(store, cache_dir=tmp_path / "cache").run(load_config(RAW), data)
    assert not again.reused
    assert again.run.data_hash == load_ohlcv(data).data_hash != first.run.data_hash
    assert again.run.run_hash != first.run.run_hash
    # and the original bytes are still recognised as the original data
    data.write_text(text)
    assert known_data_hash(store, data) == first.run.data_hash


def test_the_pipeline_answers_a_known_file_without_loading_it(store: Store, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = _bars(tmp_path / "bars.csv")
    first = _first_run(store, tmp_path, data)

    def no_load(path: Any) -> Any:
        raise AssertionError(f"loaded {path}")

    monkeypatch.setattr(pipeline_module, "load_ohlcv", no_load)
    again = Pipeline(store, cache_dir=tmp_path / "cache").run(load_config(RAW), data)
    assert again.to_json() == {**first.to_json(), "reused": True}


def test_another_code_fingerprint_or_format_is_a_miss(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = _bars(tmp_path / "bars.csv")
    _first_run(store, tmp_path, data)
    assert find_completed(store, RAW, data) is not None
    same_bytes_other_format = tmp_path / "bars.csv.gz"
    same_bytes_other_format.write_bytes(data.read_bytes())
    assert known_data_hash(store, same_bytes_other_format) is None
    monkeypatch.setattr(resubmit, "code_fingerprint", lambda: "0" * 64)
    assert find_completed(store, RAW, data) is None


def test_a_config_written_differently_is_found_once_validated(store: Store, tmp_path: Path) -> None:
    """Another raw document with the same canonical config is a miss until it is validated once; then both
    documents find the same run."""
    data = _bars(tmp_path / "bars.csv")
    first = _first_run(store, tmp_path, data)
    other = {**RAW, "execution": {"allow_short": True, "fee_bps": 1}}  # the default, written out
    assert config_digest(other) != config_digest(RAW)
    assert find_completed(store, other, data) is None
    remember_config(store, other, load_config(other))
    found = find_completed(store, other, data)
    assert found is not None and found.run.run_hash == first.run.run_hash


def test_a_config_without_canonical_json_takes_the_slow_path() -> None:
    import datetime

    assert config_digest({**RAW, "symbol": datetime.date(2026, 1, 1)}) is None
    assert config_digest({**RAW, "seed": float("nan")}) is None


_CHILD = """
import sys
from alphaforge.cli.main import main
code = main(sys.argv[1:])
sys.stderr.write("\\nLOADED " + ",".join(m for m in ("pandas", "numpy", "pyarrow", "adbc_driver_manager") if m in sys.modules) + "\\n")
sys.exit(code)
"""


def _cli(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120"}, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr.rsplit("LOADED ", 1)[1].strip()


def test_the_cli_answers_a_resubmission_without_the_compute_stack(store: Store, tmp_path: Path) -> None:
    data = _bars(tmp_path / "bars.csv")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(RAW))
    argv = ("run", "--data", str(data), "--config", str(config), "--db", store.url, "--json",
            "--cache-dir", str(tmp_path / "cache"))
    first, loaded_first = _cli(tmp_path, *argv)
    assert not first["reused"] and "pandas" in loaded_first
    again, loaded_again = _cli(tmp_path, *argv)
    assert again == {**first, "reused": True}
    assert loaded_again == ""  # answered from the database: no pandas, numpy, pyarrow or ADBC driver imported
    # an override that changes the run: not the stored run (slow path, a new run)
    other, _ = _cli(tmp_path, *argv, "--set", "seed=12")
    assert not other["reused"] and other["run_hash"] != first["run_hash"]


def test_store_existing_opens_only_a_database_at_head_and_creates_nothing(store: Store, tmp_path: Path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from alphaforge.db import migrate

    missing = tmp_path / "missing.db"
    assert Store.existing(f"sqlite:///{missing}") is None
    assert not list(tmp_path.glob("missing.db*"))
    assert Store.existing("postgresql+psycopg://nobody@127.0.0.1:1/none") is None  # unreachable: None, no error
    at_head = Store.existing(store.url)
    assert at_head is not None and at_head.url == store.url
    behind = tmp_path / "behind.db"
    engine = create_engine(f"sqlite:///{behind}", poolclass=NullPool)
    migrate.upgrade(engine, "0003")
    engine.dispose()
    assert Store.existing(f"sqlite:///{behind}") is None
    assert Store(f"sqlite:///{behind}", ensure_schema=False).schema_revision() == "0003"  # left as it was


def test_listing_runs_loads_no_compute_or_bulk_library(store: Store, tmp_path: Path) -> None:
    listing, loaded = _cli(tmp_path, "runs", "list", "--db", store.url, "--json")
    assert listing == {"runs": []}
    assert loaded == ""  # the Store opens without numpy, pandas, pyarrow or the ADBC driver manager
