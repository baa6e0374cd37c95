"""The `alphaforge` command line through its real entry point (the console script, as a subprocess).

Every database-facing test runs on SQLite and on PostgreSQL (the ``db_url`` / ``empty_db_url`` fixtures).
Checks that do not reach a database (usage and configuration errors, unreachable URLs) run once.
Subprocesses always run with ``cwd=tmp_path``: the demo and the feature cache write beside the database or,
for PostgreSQL, into the working directory, never into the checkout.

Each CLI start costs about a second of imports, so the tests share invocations where one run can carry
several assertions, and seed stored runs in-process (through the library) when the command under test only
reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _run_helpers import colliding_configs, shared_prefix
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from alphaforge.config import load_config
from alphaforge.data import load_ohlcv
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db import migrate
from alphaforge.db.engine import dispose_engine
from alphaforge.db.store import Store
from alphaforge.runs.pipeline import PHASES, Pipeline
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import RunService

N_BARS = 400
OUTCOME_KEYS = {"run_hash", "status", "reused", "data_hash", "seed_root", "metrics", "validation",
                "anomaly_counters", "phases"}
HEX64 = re.compile(r"[0-9a-f]{64}")
BAR_CHARS = "━"
SPINNER_CHARS = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ANSI = "\x1b["
PASSWORD = "s3cr3t"
CLOSED_PG_URL = f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/x"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Small validation sizes keep one `run` well under a second.
CONFIG_TOML = """\
symbol = "CLI"
seed = 7

[strategy]
name = "sma_cross"
params = { fast = 10, slow = 50 }

[validation.permutation]
n = 20

[validation.bootstrap]
n = 200

[validation.walk_forward]
folds = 3
"""

_SCRUBBED_ENV = ("ALPHAFORGE_DB_URL", "ALPHAFORGE_CACHE_DIR", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE",
                 "TTY_INTERACTIVE", "COLUMNS", "LINES", "JUPYTER_COLUMNS", "JUPYTER_LINES")


# --------------------------------------------------------------------------- helpers
def _entry_point() -> list[str]:
    """The installed console script beside the interpreter, else the module's own ``__main__``."""
    script = Path(sys.executable).with_name("alphaforge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "alphaforge.cli.main"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(extra)
    return env


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``alphaforge ARGS`` with pipes (not a TTY) in ``cwd``."""
    return subprocess.run([*_entry_point(), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=180, check=False)


def cli_many(cwd: Path, *argvs: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent invocations at the same time (each CLI start is mostly import time)."""
    with ThreadPoolExecutor(max_workers=len(argvs)) as pool:
        return list(pool.map(lambda argv: cli(cwd, *argv), argvs))


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """Exit 0 and exactly one JSON document on stdout (json.loads rejects anything after it)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], exit_code: int, error_code: str) -> str:
    """The documented failure shape: exit code, one ``error [CODE]: …`` line on stderr, no traceback."""
    assert proc.returncode == exit_code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert lines[0].startswith(f"error [{error_code}]: "), lines[0]
    return lines[0]


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def head() -> str:
    return f"{migrate.SCHEMA_VERSION:04d}"


def _run_on_tty(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with stdout on a pseudo-terminal; returns (exit code, everything it wrote)."""
    if shutil.which("script"):  # util-linux: runs the command on a new pty, relays its output
        proc = subprocess.run(["script", "-qec", shlex.join(argv), "/dev/null"], cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=180, check=False)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")
    master, slave = pty.openpty()
    child = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return child.wait(timeout=180), b"".join(chunks).decode("utf-8", "replace")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bars.csv"
    synthetic_ohlcv(N_BARS).to_csv(path, index=False)
    return path


@pytest.fixture
def config_toml(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TOML, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- demo
def test_demo_json_prints_exactly_one_outcome_object(db_url: str, tmp_path: Path) -> None:
    out = ok_json(cli(tmp_path, "demo", "--db", db_url, "--bars", str(N_BARS), "--json"))
    assert isinstance(out, dict) and set(out) == OUTCOME_KEYS
    assert out["status"] == "completed" and out["reused"] is False
    assert HEX64.fullmatch(out["run_hash"]) and HEX64.fullmatch(out["data_hash"])
    assert set(PHASES) <= set(out["phases"])
    assert out["metrics"]["n_trades"] >= 0 and "sharpe" in out["metrics"]
    assert out["validation"] is not None
    # the demo's inputs are written beside the SQLite file, or into the working directory for PostgreSQL
    assert (tmp_path / "demo_ohlcv.csv").is_file() and (tmp_path / "demo_config.toml").is_file()
    assert query(db_url, "SELECT run_hash, status FROM runs") == [(out["run_hash"], "completed")]
    assert query(db_url, "SELECT count(*) FROM equity WHERE run_hash = :h", h=out["run_hash"]) == [(N_BARS,)]


def test_the_console_script_closes_the_sqlite_file_before_it_exits(tmp_path: Path) -> None:
    """The console script ends without the interpreter's last full collection (``cli.main.entry``), so it
    closes its connections itself: the write-ahead log is checkpointed into the file and removed, as a normal
    exit does, and a command's exit code still comes through."""
    db = tmp_path / "research.db"
    ok_json(cli(tmp_path, "demo", "--db", f"sqlite:///{db}", "--json"))
    assert db.is_file()
    assert not db.with_name("research.db-wal").exists() and not db.with_name("research.db-shm").exists()
    listed = cli(tmp_path, "runs", "list", "--db", f"sqlite:///{db}", "--limit", "0")
    assert_one_line_error(listed, 2, "CONFIG_INVALID")
    assert not db.with_name("research.db-wal").exists()


def test_demo_summary_without_progress_when_stdout_is_not_a_tty(db_url: str, tmp_path: Path) -> None:
    proc = cli(tmp_path, "demo", "--db", db_url, "--bars", str(N_BARS))
    assert proc.returncode == 0, proc.stderr
    [(run_hash, status)] = query(db_url, "SELECT run_hash, status FROM runs")
    assert status == "completed"
    assert f"run {run_hash}" in proc.stdout and "status: completed" in proc.stdout
    for section in ("Performance", "Robustness", "Anomalies", "Phases (ms)"):
        assert section in proc.stdout
    both = proc.stdout + proc.stderr
    assert not set(BAR_CHARS + SPINNER_CHARS) & set(both), "progress bar drawn on a pipe"
    assert ANSI not in both, "ANSI escape codes written to a pipe"


def test_demo_draws_a_progress_bar_per_phase_on_a_tty_but_not_with_json(tmp_path: Path) -> None:
    env = _env(TERM="xterm-256color")
    human, as_json = tmp_path / "human", tmp_path / "json"
    argvs = []
    for where, extra in ((human, []), (as_json, ["--json"])):
        where.mkdir()
        argvs.append([*_entry_point(), "demo", "--bars", str(N_BARS), "--db", f"sqlite:///{where / 'af.db'}",
                      *extra])
    with ThreadPoolExecutor(max_workers=2) as pool:
        (code, output), (json_code, json_output) = pool.map(lambda argv: _run_on_tty(argv, tmp_path, env), argvs)

    assert code == 0, output
    assert BAR_CHARS in output
    for phase in PHASES:
        assert re.search(rf"{phase}\s+\S*{BAR_CHARS}", output), f"no bar for phase {phase!r}"
    [(run_hash,)] = query(f"sqlite:///{human / 'af.db'}", "SELECT run_hash FROM runs")
    assert run_hash in output

    # --json on a terminal: still exactly one JSON object, no progress display
    assert json_code == 0, json_output
    assert json.loads(json_output)["run_hash"] == run_hash
    assert BAR_CHARS not in json_output and ANSI not in json_output


# --------------------------------------------------------------------------- run: reuse and overrides
def test_run_again_is_reused_and_set_changes_the_identity(db_url: str, tmp_path: Path, data_csv: Path,
                                                          config_toml: Path) -> None:
    args = ("run", "--data", str(data_csv), "--config", str(config_toml), "--db", db_url, "--json")
    first = ok_json(cli(tmp_path, *args))
    assert set(first) == OUTCOME_KEYS and first["status"] == "completed" and first["reused"] is False
    assert set(PHASES) <= set(first["phases"])
    count_phases = "SELECT count(*) FROM phase_metrics WHERE run_hash = :h"
    [(phase_rows,)] = query(db_url, count_phases, h=first["run_hash"])
    assert phase_rows >= len(PHASES)

    again, fast5 = map(ok_json, cli_many(tmp_path, args, (*args, "--set", "strategy.params.fast=5")))
    assert again["reused"] is True and again["status"] == "completed"
    assert again["run_hash"] == first["run_hash"]
    assert again["metrics"] == first["metrics"] and again["validation"] == first["validation"]
    assert query(db_url, count_phases, h=first["run_hash"]) == [(phase_rows,)], "the reused run recomputed"

    assert fast5["reused"] is False and fast5["status"] == "completed"
    assert fast5["run_hash"] != first["run_hash"] and fast5["data_hash"] == first["data_hash"]
    [(config_json,)] = query(db_url, "SELECT config_json FROM runs WHERE run_hash = :h", h=fast5["run_hash"])
    assert json.loads(config_json)["strategy"]["params"] == {"fast": 5, "slow": 50}
    assert sorted(query(db_url, "SELECT run_hash FROM runs")) == sorted([(first["run_hash"],),
                                                                        (fast5["run_hash"],)])


# --------------------------------------------------------------------------- runs list / show / export / plot
UNKNOWN_PREFIX = "0123456789ab"


def test_runs_list_show_export_plot(db_url: str, tmp_path: Path, data_csv: Path, config_toml: Path) -> None:
    """Two completed runs (fast=10, fast=5) and, updated last, a pending one (fast=20) are stored through the
    library; the six read-only `runs …` invocations then run at once."""
    store = Store(db_url)
    pipeline = Pipeline(store, cache_dir=tmp_path / "seed_cache")
    raw = load_config(config_toml).to_dict()

    def config(fast: int) -> Any:
        return load_config({**raw, "strategy": {"name": "sma_cross", "params": {"fast": fast, "slow": 50}}})

    target, other = (pipeline.run(config(fast), data_csv).to_json() for fast in (10, 5))
    time.sleep(0.01)  # the pending run is strictly the most recently updated
    pending = RunService(store).create(new_run(config(20), load_ohlcv(data_csv))).run.run_hash
    dispose_engine(db_url)
    completed = {target["run_hash"], other["run_hash"]}
    assert not any(h.startswith(UNKNOWN_PREFIX) for h in completed | {pending})
    export_dir, png = tmp_path / "export", tmp_path / "x.png"
    db = ("--db", db_url)
    listed, filtered, shown, unknown, exported, plotted = cli_many(
        tmp_path,
        ("runs", "list", *db, "--json"),
        ("runs", "list", *db, "--json", "--status", "completed", "--limit", "1"),
        ("runs", "show", target["run_hash"][:12], *db, "--json"),
        ("runs", "show", UNKNOWN_PREFIX, *db, "--json"),
        ("runs", "export", target["run_hash"], "--out", str(export_dir), *db),
        ("runs", "plot", target["run_hash"][:12], "--out", str(png), *db, "--json"),
    )

    # runs list --json: one object {"runs": [...]}, newest first
    listing = ok_json(listed)
    assert set(listing) == {"runs"}
    rows = listing["runs"]
    assert [r["run_hash"] for r in rows][0] == pending, "newest first"
    assert {r["run_hash"]: r["status"] for r in rows} == {**dict.fromkeys(completed, "completed"),
                                                          pending: "pending"}
    for r in rows:
        assert r["strategy"] == "sma_cross" and r["symbol"] == "CLI"
        assert isinstance(r["sharpe"], float) if r["run_hash"] in completed else r["sharpe"] is None
    # the pending run is the newest: ignoring --status would return it, ignoring --limit would return two
    only = ok_json(filtered)["runs"]
    assert len(only) == 1 and only[0]["status"] == "completed" and only[0]["run_hash"] in completed

    # runs show <12-char prefix>
    details = ok_json(shown)
    assert details["run_hash"] == target["run_hash"]
    assert details["status"] == "completed" and details["data_hash"] == target["data_hash"]
    assert details["metrics"] == target["metrics"] and details["validation"] == target["validation"]
    assert details["config"]["strategy"]["params"] == {"fast": 10, "slow": 50}
    assert details["errors"] == []
    assert UNKNOWN_PREFIX in assert_one_line_error(unknown, 2, "RUN_NOT_FOUND")

    # runs export: parquet files whose sha256 matches the manifest; one equity row per bar
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in export_dir.iterdir()) == ["equity.parquet", "manifest.json", "trades.parquet"]
    manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_hash"] == target["run_hash"] and manifest["status"] == "completed"
    assert manifest["data_hash"] == target["data_hash"]
    assert set(manifest["files"]) == {"equity.parquet", "trades.parquet"}
    for name, info in manifest["files"].items():
        digest = hashlib.sha256((export_dir / name).read_bytes()).hexdigest()
        assert digest == info["sha256"], f"{name}: sha256 differs from the manifest"
        assert len(pd.read_parquet(export_dir / name)) == info["rows"]
        assert digest in exported.stdout
    assert manifest["files"]["equity.parquet"]["rows"] == N_BARS
    [(n_trades,)] = query(db_url, "SELECT count(*) FROM trades WHERE run_hash = :h", h=target["run_hash"])
    assert manifest["files"]["trades.parquet"]["rows"] == n_trades == target["metrics"]["n_trades"]

    # runs plot: a PNG
    assert ok_json(plotted) == {"run_hash": target["run_hash"], "out": str(png)}
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_runs_show_refuses_an_ambiguous_prefix_with_exit_2(db_url: str, tmp_path: Path, data_csv: Path,
                                                             config_toml: Path) -> None:
    """Two stored runs whose run_hash values share 4+ leading hex characters (chosen by construction):
    `runs show SHARED` is a one-line RUN_AMBIGUOUS error with exit 2; one more character shows each run."""
    dataset = load_ohlcv(data_csv)
    raw = load_config(config_toml).to_dict()
    pair = colliding_configs(lambda symbol: load_config({**raw, "symbol": symbol}), dataset.data_hash, shared=4)
    service = RunService(Store(db_url))
    first, second = (service.create(new_run(config, dataset)).run.run_hash for config in pair)
    dispose_engine(db_url)
    common = shared_prefix(first, second)
    db = ("--db", db_url)
    ambiguous, shown_first, shown_second = cli_many(
        tmp_path,
        ("runs", "show", common, *db, "--json"),
        ("runs", "show", first[: len(common) + 1], *db, "--json"),
        ("runs", "show", second[: len(common) + 1], *db, "--json"),
    )
    assert common in assert_one_line_error(ambiguous, 2, "RUN_AMBIGUOUS")
    assert ok_json(shown_first)["run_hash"] == first
    assert ok_json(shown_second)["run_hash"] == second


# --------------------------------------------------------------------------- db
def test_db_upgrade_current_downgrade_base_and_upgrade_again(empty_db_url: str, tmp_path: Path) -> None:
    url = empty_db_url
    up = ok_json(cli(tmp_path, "db", "upgrade", "--db", url, "--json"))
    assert up["previous"] is None and up["revision"] == up["head"] == head() and up["up_to_date"] is True
    assert {"runs", "trades", "equity", "metrics", "validation", "phase_metrics", "run_errors",
            "features_cache"} <= table_names(url)

    current = ok_json(cli(tmp_path, "db", "current", "--db", url, "--json"))
    assert current == {**up, "previous": head()}

    down = cli(tmp_path, "db", "downgrade", "--to", "base", "--db", url)
    assert down.returncode == 0, down.stderr
    assert table_names(url) <= {"alembic_version"}, "downgrade to base left tables behind"
    assert query(url, "SELECT count(*) FROM alembic_version") == [(0,)]

    again = cli(tmp_path, "db", "upgrade", "--db", url)
    assert again.returncode == 0, again.stderr
    assert f"-> {head()}" in again.stdout
    assert query(url, "SELECT version_num FROM alembic_version") == [(head(),)]
    assert "runs" in table_names(url)


def _set_ahead(url: str) -> None:
    Store(url)  # migrate to head in-process
    dispose_engine(url)
    execute(url, "UPDATE alembic_version SET version_num = '9999'")


def test_database_ahead_of_the_code_is_refused_with_exit_4(empty_db_url: str, tmp_path: Path,
                                                           data_csv: Path, config_toml: Path) -> None:
    _set_ahead(empty_db_url)
    proc = cli(tmp_path, "run", "--data", str(data_csv), "--config", str(config_toml), "--db", empty_db_url,
               "--json")
    line = assert_one_line_error(proc, 4, "SCHEMA_AHEAD")
    assert "9999" in line
    assert query(empty_db_url, "SELECT count(*) FROM runs") == [(0,)]


# --------------------------------------------------------------------------- exit codes
def test_data_errors_exit_3(db_url: str, tmp_path: Path, config_toml: Path) -> None:
    negative, empty = tmp_path / "negative.csv", tmp_path / "empty.csv"
    frame = synthetic_ohlcv(N_BARS)
    frame.loc[10, "low"] = -1.0
    frame.to_csv(negative, index=False)
    empty.write_bytes(b"")
    neg, emp = cli_many(tmp_path, *(("run", "--data", str(p), "--config", str(config_toml), "--db", db_url,
                                     "--json") for p in (negative, empty)))
    line = assert_one_line_error(neg, 3, "DATA_INVALID")
    assert "[rule positive_price]" in line and "row 10" in line and "'low'" in line
    assert "[rule empty_file]" in assert_one_line_error(emp, 3, "DATA_INVALID")
    assert query(db_url, "SELECT count(*) FROM runs") == [(0,)], "invalid data created a run"


# Checks that never reach a usable database run once, all at the same time (see `failures`).
FAILURES: dict[str, tuple[str, ...]] = {
    "missing_data": ("run", "--config", "{config}", "--db", "{untouched}"),
    "config_unknown_key": ("run", "--data", "{data}", "--config", "{bogus_key}", "--db", "{untouched}",
                           "--json"),
    "unknown_strategy": ("run", "--data", "{data}", "--config", "{bogus_strategy}", "--db", "{untouched}",
                         "--json"),
    "set_unknown_key": ("run", "--data", "{data}", "--config", "{config}", "--db", "{untouched}", "--json",
                        "--set", "strategy.params.bogus=3"),
    "nonsense_url": ("run", "--data", "{data}", "--config", "{config}", "--db", "nonsense://x", "--json"),
    "closed_port": ("run", "--data", "{data}", "--config", "{config}", "--db", CLOSED_PG_URL, "--json"),
    "closed_port_debug": ("--debug", "db", "current", "--db", CLOSED_PG_URL),
    "empty_data_debug": ("--debug", "run", "--data", "{empty}", "--config", "{config}", "--db", "{db}"),
    "db_upgrade_ahead": ("db", "upgrade", "--db", "{ahead}"),
    "db_upgrade_unknown_revision": ("db", "upgrade", "--to", "0042", "--db", "{fresh}"),
}


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every FAILURES invocation's CompletedProcess, plus ``dir`` (their working directory)."""
    d = tmp_path_factory.mktemp("failures")
    data = d / "bars.csv"
    synthetic_ohlcv(N_BARS).to_csv(data, index=False)
    ahead = f"sqlite:///{d / 'ahead.db'}"
    _set_ahead(ahead)
    paths = {
        "config": _write(d / "config.toml", CONFIG_TOML),
        "bogus_key": _write(d / "bogus_key.toml", "bogus = 1\n" + CONFIG_TOML),
        "bogus_strategy": _write(d / "bogus_strategy.toml",
                                 CONFIG_TOML.replace('"sma_cross"', '"no_such_strategy"')),
        "empty": _write(d / "empty.csv", ""),
        "data": data, "db": f"sqlite:///{d / 'af.db'}", "ahead": ahead, "fresh": f"sqlite:///{d / 'fresh.db'}",
        "untouched": f"sqlite:///{d / 'untouched.db'}",
    }
    argvs = [tuple(a.format(**paths) for a in argv) for argv in FAILURES.values()]
    results: dict[str, Any] = dict(zip(FAILURES, cli_many(d, *argvs), strict=True))
    return {**results, "dir": d}


def _write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def test_missing_required_option_is_an_argparse_usage_error(failures: dict[str, Any]) -> None:
    proc = failures["missing_data"]
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: alphaforge run") and "--data" in proc.stderr.splitlines()[-1]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("case", "needle"), [
    ("config_unknown_key", "bogus: unknown key"),
    ("unknown_strategy", "unknown strategy 'no_such_strategy'"),
    ("set_unknown_key", "strategy.params.bogus"),
])
def test_configuration_errors_exit_2(failures: dict[str, Any], case: str, needle: str) -> None:
    assert needle in assert_one_line_error(failures[case], 2, "CONFIG_INVALID")


def test_usage_and_configuration_errors_never_touch_the_database(failures: dict[str, Any]) -> None:
    assert not list(failures["dir"].glob("untouched.db*")), "a usage or configuration error opened the database"
    # the data error (after the database is opened) created no run
    assert failures["empty_data_debug"].returncode == 3
    assert query(f"sqlite:///{failures['dir'] / 'af.db'}", "SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.parametrize(("case", "needle"), [
    ("nonsense_url", "unsupported database 'nonsense'"),
    ("closed_port", "u:***@127.0.0.1:1/x"),
], ids=["nonsense_url", "closed_port"])
def test_unusable_database_url_exits_4_without_leaking_the_password(failures: dict[str, Any], case: str,
                                                                    needle: str) -> None:
    proc = failures[case]
    assert needle in assert_one_line_error(proc, 4, "DB_UNAVAILABLE")
    assert PASSWORD not in proc.stdout + proc.stderr


def test_debug_adds_the_traceback(failures: dict[str, Any]) -> None:
    for case, exit_code, error_code in (("empty_data_debug", 3, "DATA_INVALID"),
                                        ("closed_port_debug", 4, "DB_UNAVAILABLE")):
        proc = failures[case]
        assert proc.returncode == exit_code, proc.stderr
        assert "Traceback (most recent call last)" in proc.stderr
        assert proc.stderr.splitlines()[-1].startswith(f"error [{error_code}]: ")
    assert "alphaforge.errors.DataInvalid" in failures["empty_data_debug"].stderr
    assert PASSWORD not in failures["closed_port_debug"].stderr


def test_db_upgrade_on_a_database_ahead_is_refused_with_exit_4(failures: dict[str, Any]) -> None:
    assert_one_line_error(failures["db_upgrade_ahead"], 4, "SCHEMA_AHEAD")


def test_db_upgrade_to_an_unknown_revision_is_a_usage_error(failures: dict[str, Any]) -> None:
    assert_one_line_error(failures["db_upgrade_unknown_revision"], 2, "CONFIG_INVALID")
