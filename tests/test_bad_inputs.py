"""The bad-input catalog: every row goes through the real CLI (a subprocess) on both backends.

Each row builds one bad input and states the typed error it must produce: the ``error_code``, the documented
exit code (2 config/usage, 3 data, 4 database/schema) and the substrings the ONE stderr line must contain (the
field, row or column it names). After each, the database must be exactly as before: a checksum over every table
(row count + sha256 of all rows ordered by primary key) is compared.

The subprocesses are slow to start (the CLI imports pandas, pyarrow, SQLAlchemy and Alembic), so each backend's
whole catalog runs side by side once (a thread pool of subprocesses), every case against its OWN copy of a
database seeded with one completed run (SQLite: a file copy; PostgreSQL: ``CREATE DATABASE … TEMPLATE``). The
per-row tests then check the recorded outcomes.

A corrupt feature-cache file is deliberately NOT an error: it is detected (``CACHE_CORRUPT`` logged and
counted), rebuilt and never silently used — see the last tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import PG_URL, _pg_admin_engine, drop_pg_database
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import alphaforge
from alphaforge.config import load_config
from alphaforge.data import dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import PhaseMetric
from alphaforge.db.store import Store
from alphaforge.hashing import sha256_file
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.verify import verify_run

REPO = Path(alphaforge.__file__).resolve().parent.parent
N_BARS = 400
CLI_TIMEOUT_S = 180


# --------------------------------------------------------------------------- inputs
def base_frame() -> pd.DataFrame:
    return synthetic_ohlcv(N_BARS)


def base_config(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "seed": 11,
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "execution": {"allow_short": True},
        "validation": {"permutation": {"n": 20}, "bootstrap": {"n": 100}},
    }


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for configs (scalars, lists, nested tables)."""
    scalars = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    text_ = "\n".join(out) + ("\n" if out else "")
    for k, v in doc.items():
        if isinstance(v, dict):
            text_ += to_toml(v, f"{prefix}.{k}" if prefix else k)
    return text_


@dataclass
class Work:
    """One case's directory and database, given to its builder."""

    dir: Path
    db: str
    csv_text: str  # the valid dataset as CSV text

    def data(self, text_: str | bytes | None = None, frame: pd.DataFrame | None = None, name: str = "data.csv") -> str:
        path = self.dir / name
        if frame is not None:
            frame.to_csv(path, index=False)
        elif isinstance(text_, bytes):
            path.write_bytes(text_)
        else:
            path.write_text(self.csv_text if text_ is None else text_, encoding="utf-8")
        return str(path)

    def config(self, doc: dict[str, Any] | None = None, raw: str | None = None, name: str = "config.toml") -> str:
        path = self.dir / name
        path.write_text(raw if raw is not None else to_toml(doc or base_config(self.dir.name)), encoding="utf-8")
        return str(path)

    def run(self, *, data: str | None = None, config: str | None = None, db: str | None = None,
            extra: tuple[str, ...] = ()) -> list[str]:
        return ["run", "--data", data or self.data(), "--config", config or self.config(),
                "--db", db or self.db, "--json", *extra]


def frame_with(mutate: Callable[[pd.DataFrame], Any]) -> Callable[[Work], list[str]]:
    def build(w: Work) -> list[str]:
        frame = base_frame()
        mutate(frame)
        return w.run(data=w.data(frame=frame))
    return build


def config_with(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[Work], list[str]]:
    def build(w: Work) -> list[str]:
        doc = base_config(w.dir.name)
        mutate(doc)
        return w.run(config=w.config(doc))
    return build


def _set(frame: pd.DataFrame, row: int, **values: Any) -> None:
    for column, value in values.items():
        if isinstance(value, str) and frame[column].dtype != object:
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value


def _swap(frame: pd.DataFrame, i: int, j: int) -> None:
    a, b = frame.loc[i].copy(), frame.loc[j].copy()
    frame.loc[i], frame.loc[j] = b, a


def _high_below_body(frame: pd.DataFrame) -> None:
    row = 12
    o, c, lo = frame.loc[row, "open"], frame.loc[row, "close"], frame.loc[row, "low"]
    high = max(lo, min(o, c)) + (max(o, c) - max(lo, min(o, c))) / 2
    assert lo <= high < max(o, c), "the bar must break only high >= max(open, close)"
    frame.loc[row, "high"] = high


def _latin1(w: Work) -> list[str]:
    """Line 8 (the 7th bar) gets a latin-1 byte: 'é' is 0xe9, never valid UTF-8 on its own."""
    lines = [line.encode() for line in w.csv_text.splitlines(keepends=True)]
    lines[7] = lines[7].replace(b",", ",é".encode("latin-1"), 1)
    return w.run(data=w.data(b"".join(lines)))


def _truncated(w: Work) -> list[str]:
    """The last line cut in the middle of its third field (as if the copy stopped there)."""
    body = w.csv_text.rstrip("\n")
    start = body.rfind("\n") + 1
    second_comma = body.index(",", body.index(",", start) + 1)
    return w.run(data=w.data(body[: second_comma + 3]))


def _ahead(w: Work) -> None:
    engine = create_engine(w.db, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()


def _not_writable_cache(w: Work) -> list[str]:
    blocker = w.dir / "a-file"
    blocker.write_text("not a directory")
    return w.run(extra=("--cache-dir", str(blocker / "sub")))


def _unreachable(w: Work) -> list[str]:
    url = (f"sqlite:///{w.dir / 'no' / 'such' / 'dir' / 'x.db'}" if w.db.startswith("sqlite")
           else make_url(w.db).set(port=1).render_as_string(hide_password=False))
    return w.run(db=url)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Work], list[str]]  # -> argv after `alphaforge`
    error_code: str
    exit_code: int
    needles: tuple[str, ...]  # substrings of the one stderr line
    prepare: Callable[[Work], None] | None = None  # runs on the case's own database before the CLI
    checksum: bool = True  # False: the URL is not a database we can read
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    env: tuple[tuple[str, str], ...] = ()  # extra environment of the CLI process
    xfail: str | None = None  # "bug: ..." — a product bug, documented in the report

    @property
    def params(self) -> list[Any]:
        """One (case, backend) pair per backend the case depends on."""
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return [pytest.param(self, backend, id=f"{self.id}-{backend}", marks=marks) for backend in self.backends]


CASES: list[Case] = [
    # ---- data (exit 3)
    Case("nan_price", frame_with(lambda f: _set(f, 5, close=np.nan)), "DATA_INVALID", 3,
         ("row 5", "column 'close'", "NaN")),
    Case("negative_price", frame_with(lambda f: _set(f, 7, open=-1.0)), "DATA_INVALID", 3,
         ("row 7", "column 'open'", "must be > 0")),
    Case("zero_price", frame_with(lambda f: _set(f, 3, low=0.0)), "DATA_INVALID", 3,
         ("row 3", "column 'low'", "must be > 0")),
    Case("high_below_low", frame_with(lambda f: _set(f, 10, high=f.loc[10, "low"] - 1.0)), "DATA_INVALID", 3,
         ("row 10", "column 'high'", "high < low")),
    Case("high_below_open_close", frame_with(_high_below_body), "DATA_INVALID", 3,
         ("row 12", "column 'high'", "high < max(open, close)")),
    Case("unsorted_timestamps", frame_with(lambda f: _swap(f, 20, 21)), "DATA_INVALID", 3,
         ("row 21", "column 'ts'", "earlier than the previous bar")),
    Case("duplicate_timestamps", frame_with(lambda f: _set(f, 30, timestamp=f.loc[29, "timestamp"])),
         "DATA_INVALID", 3, ("row 30", "column 'ts'", "duplicate timestamp")),
    Case("float32_overflow", frame_with(lambda f: _set(f, 8, close=1e39, high=1e39)), "DATA_INVALID", 3,
         ("row 8", "column 'high'", "float32")),
    Case("infinite_price", frame_with(lambda f: _set(f, 9, close="inf")), "DATA_INVALID", 3,
         ("row 9", "column 'close'", "infinite")),
    Case("unparsable_number", frame_with(lambda f: _set(f, 4, close="12.3x")), "DATA_INVALID", 3,
         ("row 4", "column 'close'", "'12.3x'")),
    Case("unparsable_timestamp", frame_with(lambda f: _set(f, 6, timestamp="yesterday")), "DATA_INVALID", 3,
         ("row 6", "column 'timestamp'", "'yesterday'")),
    Case("missing_close_column", frame_with(lambda f: f.pop("close")), "DATA_INVALID", 3,
         ("'close'", "missing")),
    Case("two_timestamp_columns", frame_with(lambda f: f.insert(1, "date", f["timestamp"])), "DATA_INVALID", 3,
         ("several timestamp columns", "'date'")),
    Case("negative_volume", frame_with(lambda f: _set(f, 2, volume=-5)), "DATA_INVALID", 3,
         ("row 2", "column 'volume'", "negative")),
    Case("empty_file", lambda w: w.run(data=w.data("")), "DATA_INVALID", 3, ("data.csv", "empty")),
    Case("header_only", lambda w: w.run(data=w.data("timestamp,open,high,low,close,volume\n")), "DATA_INVALID", 3,
         ("data.csv", "header but no bars")),
    Case("non_utf8", _latin1, "DATA_INVALID", 3, ("not UTF-8", "byte 0xe9", "line 8")),
    Case("truncated_csv", _truncated, "DATA_INVALID", 3, (f"line {N_BARS + 1}", "expected 6 fields")),
    Case("unsupported_data_type", lambda w: w.run(data=w.data(name="data.xlsx")), "DATA_INVALID", 3,
         ("data.xlsx", "unsupported file type")),
    # ---- configuration and usage (exit 2)
    Case("missing_data_file", lambda w: w.run(data=str(w.dir / "nope.csv")), "CONFIG_INVALID", 2,
         ("--data", "nope.csv")),
    Case("unknown_strategy", config_with(lambda c: c["strategy"].update(name="nope")), "CONFIG_INVALID", 2,
         ("strategy.name", "'nope'")),
    Case("param_wrong_type", config_with(lambda c: c["strategy"]["params"].update(fast="ten")), "CONFIG_INVALID", 2,
         ("strategy.params.fast", "'ten'")),
    Case("fast_not_below_slow", config_with(lambda c: c["strategy"]["params"].update(fast=50)), "CONFIG_INVALID", 2,
         ("strategy.params.fast", "slow")),
    Case("negative_fee", config_with(lambda c: c["execution"].update(fee_bps=-1)), "CONFIG_INVALID", 2,
         ("execution.fee_bps", ">= 0")),
    Case("unknown_config_key", config_with(lambda c: c["execution"].update(fees=1.0)), "CONFIG_INVALID", 2,
         ("execution.fees", "unknown key")),
    Case("wrong_config_type", config_with(lambda c: c["execution"].update(allow_short="yes")), "CONFIG_INVALID", 2,
         ("execution.allow_short", "'yes'")),
    Case("symbol_not_a_string", config_with(lambda c: c.update(symbol=5)), "CONFIG_INVALID", 2, ("symbol",)),
    Case("bootstrap_ci_out_of_range", config_with(lambda c: c["validation"]["bootstrap"].update(ci=1.5)),
         "CONFIG_INVALID", 2, ("validation.bootstrap.ci", "< 1")),
    Case("malformed_toml", lambda w: w.run(config=w.config(raw='symbol = "X"\n[strategy\nname = "sma_cross"\n')),
         "CONFIG_INVALID", 2, ("config.toml", "cannot be read")),
    Case("unsupported_config_type", lambda w: w.run(config=w.config(raw="symbol: X\n", name="config.yaml")),
         "CONFIG_INVALID", 2, ("config.yaml", "unsupported type")),
    Case("bad_override", lambda w: w.run(extra=("--set", "validation.permutation.n=-5")), "CONFIG_INVALID", 2,
         ("validation.permutation.n", ">= 0")),
    Case("bad_stale_after_env", lambda w: w.run(), "CONFIG_INVALID", 2, ("ALPHAFORGE_STALE_AFTER_S='soon'", "> 0"),
         env=(("ALPHAFORGE_STALE_AFTER_S", "soon"),), backends=("sqlite",)),
    Case("zero_stale_after_env", lambda w: ["runs", "recover", "--db", w.db], "CONFIG_INVALID", 2,
         ("ALPHAFORGE_STALE_AFTER_S='0'",), env=(("ALPHAFORGE_STALE_AFTER_S", "0"),), backends=("sqlite",)),
    Case("cache_dir_not_writable", _not_writable_cache, "CACHE_UNAVAILABLE", 2, ("a-file/sub", "cannot be created")),
    # ---- database (exit 4)
    Case("invalid_db_url", lambda w: w.run(db="not a database url"), "DB_UNAVAILABLE", 4,
         ("invalid database URL",), checksum=False),
    Case("unsupported_db", lambda w: w.run(db="mysql://user@localhost/alphaforge"), "DB_UNAVAILABLE", 4,
         ("unsupported database", "'mysql'"), checksum=False),
    Case("unreachable_db", _unreachable, "DB_UNAVAILABLE", 4, ("cannot open database",), checksum=False),
    Case("db_ahead_of_code_run", lambda w: w.run(), "SCHEMA_AHEAD", 4, ("9999", "newer than this AlphaForge"),
         prepare=_ahead),
    Case("db_ahead_of_code_upgrade", lambda w: ["db", "upgrade", "--db", w.db], "SCHEMA_AHEAD", 4,
         ("9999",), prepare=_ahead),
]
assert len({c.id for c in CASES}) == len(CASES)
#: Extras beyond the required catalog whose path never depends on the database backend: SQLite only, which keeps
#: the run short (each row is a subprocess that imports pandas, pyarrow, SQLAlchemy and Alembic).
SQLITE_ONLY = {"infinite_price", "unparsable_timestamp", "two_timestamp_columns", "negative_volume",
               "unsupported_data_type", "missing_data_file", "symbol_not_a_string", "bootstrap_ci_out_of_range",
               "unsupported_config_type", "bad_override", "unsupported_db"}
CASES = [dataclasses.replace(c, backends=("sqlite",)) if c.id in SQLITE_ONLY else c for c in CASES]


# --------------------------------------------------------------------------- the database checksum
def db_checksum(url: str) -> dict[str, tuple[int, str]]:
    """Per table: (row count, sha256 over every row ordered by primary key) — with an engine of our own."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        meta = MetaData()
        meta.reflect(engine)
        out = {}
        with engine.connect() as conn:
            for name in sorted(meta.tables):
                table = meta.tables[name]
                order = list(table.primary_key.columns) or list(table.columns)
                h = hashlib.sha256()
                n = 0
                for row in conn.execute(select(table).order_by(*order)):
                    h.update(repr(tuple(row)).encode())
                    n += 1
                out[name] = (n, h.hexdigest())
        return out
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- running the catalog
def sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy through SQLite's backup API (a plain file copy would miss rows still in the WAL, which
    helper processes holding the database open keep from being checkpointed)."""
    with closing(sqlite3.connect(src)) as source, closing(sqlite3.connect(dst)) as target:
        source.backup(target)


@dataclass
class Outcome:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    before: dict[str, tuple[int, str]] | None
    after: dict[str, tuple[int, str]] | None


def cli(argv: list[str], cwd: Path, extra_env: tuple[tuple[str, str], ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
    env.update(extra_env)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "alphaforge.cli.main", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)


@dataclass
class Catalog:
    """Runs every case of one backend once (lazily, all side by side) and keeps the outcomes."""

    root: Path
    sqlite_template: Path
    outcomes: dict[str, dict[str, Outcome]] = field(default_factory=dict)
    pg_databases: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seeded_template(self, backend: str) -> str:
        """A database with one completed run (the rows the bad inputs must leave alone)."""
        if backend == "sqlite":
            path = self.root / "seed" / "seed.db"
            path.parent.mkdir(parents=True)
            sqlite_copy(self.sqlite_template, path)
            url = f"sqlite:///{path}"
        else:
            url = self._pg_create(None)
        store = Store(url)
        config = load_config(base_config("SEED"))
        outcome = Pipeline(store, cache_dir=self.root / f"seed-cache-{backend}").run(
            config, dataset_from_frame(base_frame()))
        assert outcome.run.status == "completed"
        dispose_engine(url)  # PostgreSQL copies a template only when nobody is connected to it
        return url

    def _pg_create(self, template: str | None) -> str:
        assert PG_URL
        name = f"af_bad_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{make_url(template).database}"' if template else ""
        with _pg_admin_engine().connect() as conn:
            if template:  # a template must have no sessions: end any lingering one of ours
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"),
                             {"db": make_url(template).database})
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.pg_databases.append(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
        return self.pg_databases[-1]

    def database_for(self, backend: str, template: str, work_dir: Path) -> str:
        if backend == "sqlite":
            path = work_dir / "alphaforge.db"
            sqlite_copy(Path(make_url(template).database or ""), path)
            return f"sqlite:///{path}"
        return self._pg_create(template)

    def get(self, backend: str) -> dict[str, Outcome]:
        with self.lock:
            if backend not in self.outcomes:
                self.outcomes[backend] = self._run_all(backend)
            return self.outcomes[backend]

    def _run_all(self, backend: str) -> dict[str, Outcome]:
        template = self.seeded_template(backend)
        csv_text = base_frame().to_csv(index=False)
        prepared: list[tuple[Case, Work, list[str], dict[str, tuple[int, str]] | None]] = []
        for case in (c for c in CASES if backend in c.backends):
            work_dir = self.root / backend / case.id
            work_dir.mkdir(parents=True)
            work = Work(work_dir, self.database_for(backend, template, work_dir), csv_text)
            if case.prepare is not None:
                case.prepare(work)
            argv = case.build(work)
            prepared.append((case, work, argv, db_checksum(work.db) if case.checksum else None))
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 2))) as pool:
            done = list(pool.map(lambda p: cli(p[2], p[1].dir, p[0].env), prepared))
        return {
            case.id: Outcome(argv, r.returncode, r.stdout, r.stderr, before,
                             db_checksum(work.db) if case.checksum else None)
            for (case, work, argv, before), r in zip(prepared, done, strict=True)
        }

    def close(self) -> None:
        for url in self.pg_databases:
            drop_pg_database(url)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path_factory.mktemp("bad_inputs"), _sqlite_template)
    try:
        yield cat
    finally:
        cat.close()


@pytest.mark.timeout(900)  # the first row of a backend runs that backend's whole catalog
@pytest.mark.parametrize(("case", "backend"), [p for c in CASES for p in c.params], indirect=["backend"])
def test_bad_input(case: Case, backend: str, catalog: Catalog) -> None:
    out = catalog.get(backend)[case.id]
    context = f"argv={out.argv}\nstdout={out.stdout!r}\nstderr={out.stderr!r}"
    assert out.returncode == case.exit_code, context
    assert "Traceback" not in out.stderr, context
    lines = out.stderr.splitlines()
    assert len(lines) == 1, context  # ONE line
    line = lines[0]
    assert line.startswith(f"error [{case.error_code}]: "), context
    for needle in case.needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert out.stdout == "", context  # --json prints nothing on an error
    if case.checksum:
        assert out.before is not None and out.before.get("runs", (0, ""))[0] == 1, "the seeded run is missing"
        assert out.after == out.before, f"rows were written: {_diff(out.before, out.after)}"


def _diff(before: dict[str, tuple[int, str]] | None, after: dict[str, tuple[int, str]] | None) -> dict[str, Any]:
    before, after = before or {}, after or {}
    return {t: (before.get(t, (0, ""))[0], after.get(t, (0, ""))[0]) for t in sorted(set(before) | set(after))
            if before.get(t) != after.get(t)}


def test_catalog_is_large_enough() -> None:
    assert SQLITE_ONLY <= {c.id for c in CASES}
    assert sum(len(c.backends) == 2 for c in CASES) >= 20  # at least 20 rows run on both backends
    assert {c.exit_code for c in CASES} == {2, 3, 4}


# --------------------------------------------------------------------------- a corrupt cache file is rebuilt
def _corrupt(path: Path, how: str) -> None:
    if how == "flip_byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flip_byte", "truncate", "delete"])
def test_corrupt_cache_file_is_detected_rebuilt_and_never_used(
    how: str, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an error by design. In-process on purpose: the cache key includes the package's git tree id
    (``code_version()``), which another commit landing between two CLI subprocesses would change — the second run
    would then use a different key and never meet the corrupt file."""
    cache_dir, dataset = tmp_path / "cache", dataset_from_frame(base_frame())
    first = Pipeline(store, cache_dir=cache_dir).run(load_config(base_config("CACHE")), dataset)
    feature = first.run.manifest["features"][0]
    path = cache_dir / feature["meta_hash"][:2] / f"{feature['meta_hash']}.parquet"
    _corrupt(path, how)
    assert not verify_run(store, first.run.run_hash, cache_dir=cache_dir).ok

    # a different run (permutation n = 21) that needs the same feature
    raw = base_config("CACHE")
    raw["validation"]["permutation"]["n"] = 21
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        second = Pipeline(store, cache_dir=cache_dir).run(load_config(raw), dataset)
    assert second.run.status == "completed" and not second.reused
    assert second.run.run_hash != first.run.run_hash
    warnings = [r.getMessage() for r in caplog.records if r.name == "alphaforge.features"]
    assert any(m.startswith("CACHE_CORRUPT") and str(path) in m and "rebuilding" in m for m in warnings), warnings

    used = {f["meta_hash"]: f for f in second.run.manifest["features"]}
    assert used[feature["meta_hash"]]["hit"] is False  # rebuilt, not served from the bad file
    assert [f["hit"] for f in second.run.manifest["features"][1:]] == [True]  # the intact one is reused
    assert used[feature["meta_hash"]]["digest"] == feature["digest"]  # same bytes again (deterministic build)
    assert sha256_file(path) == feature["digest"]
    meta = store.get_cache_meta(feature["meta_hash"])
    assert meta is not None and meta.digest == feature["digest"]
    with store.session() as s:
        extra = s.scalar(select(PhaseMetric.extra_json).where(PhaseMetric.run_hash == second.run.run_hash,
                                                              PhaseMetric.phase == "features"))
    assert extra is not None and '"hit":false' in extra
    for run_hash in (first.run.run_hash, second.run.run_hash):  # both runs verify again
        assert verify_run(store, run_hash, cache_dir=cache_dir).ok
