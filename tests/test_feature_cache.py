"""The parquet feature cache: key spec, hit/miss, projection, corruption, atomicity, concurrency, errors.

The ``features_cache`` rows live in the real :class:`alphaforge.db.store.Store`: the ``store`` fixture (a SQLite
file and PostgreSQL) wherever the rows matter, a private SQLite file Store where a test only needs somewhere to
put them. The two-process race runs against both backends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import race_in_processes
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import FeaturesCacheMeta
from alphaforge.db.store import Store
from alphaforge.errors import CacheUnavailable, ConfigInvalid, DataInvalid, IntegrityMismatch
from alphaforge.features import cache as cache_mod
from alphaforge.features.cache import (
    CacheMeta,
    CacheMetaStore,
    FeatureCache,
    code_version,
    feature_spec,
    meta_hash_of,
)
from alphaforge.features.cache_users import marker_path
from alphaforge.features.indicators import get_indicator

DATASET = "d" * 64


def cache_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every ``features_cache`` row: (meta_hash, spec_json, built_at, rows, columns, digest)."""
    table = FeaturesCacheMeta.__table__
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*(table.c[c] for c in _COLUMNS)))]


_COLUMNS = ("meta_hash", "spec_json", "built_at", "rows", "columns", "digest")


def sqlite_store(path: Path) -> Store:
    """A real Store on a SQLite file of its own (for tests that need two separate databases)."""
    return Store(f"sqlite:///{path}")


def _frame(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return pd.DataFrame({
        "ts": 1_600_000_000_000_000_000 + 60_000_000_000 * np.arange(n, dtype=np.int64),
        "open": close.astype(np.float32),
        "high": (close * 1.01).astype(np.float32),
        "low": (close * 0.99).astype(np.float32),
        "close": close.astype(np.float32),
        "volume": np.full(n, 100, dtype=np.int64),
    })


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
def fc(tmp_path: Path, store: Store) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", store, clock=Clock())


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = cache_mod.compute_chunked

    def counting(indicator: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(indicator.name)
        return real(indicator, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "compute_chunked", counting)
    return calls


def _get(fc: FeatureCache, frame: pd.DataFrame | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {"dataset_hash": DATASET, "frame": _frame() if frame is None else frame,
                            "indicator": "sma", "params": {"window": 10}, "seed_root": 7}
    args.update(kw)
    return fc.get_or_build(**args)


# ---------------------------------------------------------------------------------------------- the key


def test_spec_is_the_data_models_canonical_object() -> None:
    spec = feature_spec(DATASET, "sma", "1.0.0", {"window": 10, "a": "x"}, 7, "abc123")
    text = ('{"code_version":"abc123","dataset_hash":"' + DATASET + '","indicator":"sma",'
            '"params":{"a":"x","window":10},"seed_root":7,"version":"1.0.0"}')
    assert json.dumps(spec, sort_keys=True, separators=(",", ":")) == text
    assert set(spec) == {"dataset_hash", "indicator", "version", "params", "seed_root", "code_version"}
    assert meta_hash_of(spec) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_every_spec_field_changes_the_key() -> None:
    base: dict[str, Any] = {"dataset_hash": DATASET, "indicator": "sma", "version": "1.0.0",
                            "params": {"window": 10}, "seed_root": 7, "code_version": "abc123"}
    variants: list[dict[str, Any]] = [
        {"dataset_hash": "e" * 64}, {"indicator": "ema"}, {"version": "1.0.1"}, {"params": {"window": 11}},
        {"params": {"window": 10, "x": 1}}, {"seed_root": 8}, {"code_version": "abc124"},
    ]
    hashes = {meta_hash_of(feature_spec(**base))}
    for change in variants:
        hashes.add(meta_hash_of(feature_spec(**{**base, **change})))
    assert len(hashes) == 1 + len(variants)
    assert meta_hash_of(feature_spec(**base)) == meta_hash_of(feature_spec(**base))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(-(10**6), 10**6), max_size=5))
def test_key_ignores_param_order(params: dict[str, int]) -> None:
    reordered = dict(reversed(list(params.items())))
    a = meta_hash_of(feature_spec(DATASET, "sma", "1.0.0", params, 1, "c"))
    assert a == meta_hash_of(feature_spec(DATASET, "sma", "1.0.0", reordered, 1, "c"))


@pytest.mark.parametrize(
    "change",
    [{"seed_root": -1}, {"seed_root": 2**32}, {"seed_root": True}, {"dataset_hash": ""},
     {"params": {"w": float("nan")}}, {"params": {"w": object()}}],
)
def test_bad_spec_rejected(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {"dataset_hash": DATASET, "indicator": "sma", "version": "1.0.0",
                            "params": {"window": 10}, "seed_root": 7, "code_version": "c"}
    with pytest.raises(ConfigInvalid):
        feature_spec(**{**base, **change})


def test_code_version_is_git_tree_or_package_version() -> None:
    v = code_version()
    assert v == code_version() and code_version.cache_info().hits >= 1
    assert (len(v) == 12 and all(ch in "0123456789abcdef" for ch in v)) or v.startswith("v")


# ---------------------------------------------------------------------------------------------- hit / miss


def test_miss_builds_then_hit_computes_nothing(fc: FeatureCache, store: Store,
                                               kernel_calls: list[str]) -> None:
    frame = _frame()
    built, e1 = _get(fc, frame)
    assert (e1.hit, e1.rebuilt_corrupt, kernel_calls) == (False, False, ["sma"])
    got, e2 = _get(fc, frame)
    assert (e2.hit, kernel_calls) == (True, ["sma"])  # nothing computed on the hit
    assert fc.stats == {"hits": 1, "misses": 1, "cache_corrupt": 0}
    assert list(got.columns) == ["ts", "sma_10"] and got["ts"].dtype == np.int64 and got["sma_10"].dtype == np.float32
    pd.testing.assert_frame_equal(built, got)
    expected = get_indicator("sma").compute(frame, {"window": 10})
    assert np.array_equal(got["sma_10"].to_numpy(), expected, equal_nan=True)
    assert np.array_equal(got["ts"].to_numpy(), frame["ts"].to_numpy())
    (row,) = cache_rows(store)
    assert row[0] == e1.meta_hash and row[3:] == (2000, 2, e1.digest)
    assert json.loads(row[1])["params"] == {"window": 10}


def test_a_hit_holds_no_reference_to_the_mapped_file(fc: FeatureCache) -> None:
    """A hit reads the file through a memory mapping; what it returns must be memory of its own. Truncated in
    place afterwards, a file still referenced by the frame would fault the process (SIGBUS) on the reads below."""
    built, e1 = _get(fc)
    got, e2 = _get(fc)
    assert e2.hit
    with open(e1.path, "r+b") as fh:
        fh.truncate(0)
    pd.testing.assert_frame_equal(built, got)
    assert float(got["sma_10"].sum()) == float(built["sma_10"].sum())


def test_keys_and_paths(fc: FeatureCache, tmp_path: Path) -> None:
    _, a = _get(fc)
    _, b = _get(fc, params={"window": 11})
    _, c = _get(fc, params={})  # defaults are resolved into the key: window 20
    _, d = _get(fc, params={"window": 20})
    _, e = _get(fc, seed_root=8)
    assert len({a.meta_hash, b.meta_hash, c.meta_hash, e.meta_hash}) == 4 and c.meta_hash == d.meta_hash and d.hit
    assert a.path == tmp_path / "cache" / a.meta_hash[:2] / f"{a.meta_hash}.parquet"
    with pytest.raises(ValueError):
        fc.path_for("../etc/passwd")


def test_column_projection_reads_only_asked_columns(fc: FeatureCache, monkeypatch: pytest.MonkeyPatch,
                                                    kernel_calls: list[str]) -> None:
    _get(fc)
    asked: list[Any] = []

    class SpyParquetFile(pq.ParquetFile):
        def read(self, columns: Any = None, *args: Any, **kwargs: Any) -> Any:
            asked.append(columns)
            return super().read(columns, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", SpyParquetFile)
    only, entry = _get(fc, columns=["sma_10"])
    assert entry.hit and list(only.columns) == ["sma_10"] and asked == [["sma_10"]]
    ts_only, _ = _get(fc, columns=["ts"])
    assert list(ts_only.columns) == ["ts"] and len(kernel_calls) == 1
    with pytest.raises(ConfigInvalid, match="columns"):
        _get(fc, columns=["close"])


def test_parquet_layout_and_deterministic_bytes(tmp_path: Path) -> None:
    frame = _frame()
    one = FeatureCache(tmp_path / "one", sqlite_store(tmp_path / "one.db"), clock=Clock())
    two = FeatureCache(tmp_path / "two", sqlite_store(tmp_path / "two.db"), chunk_size=7)
    _, a = _get(one, frame, indicator="atr", params={})
    _, b = _get(two, frame, indicator="atr", params={})
    assert a.digest == b.digest and a.path.read_bytes() == b.path.read_bytes()
    assert hashlib.sha256(a.path.read_bytes()).hexdigest() == a.digest
    schema = pq.read_schema(a.path)
    assert schema.names == ["ts", "atr_14"] and str(schema.types[0]) == "int64" and str(schema.types[1]) == "float"
    assert b"pandas" not in (schema.metadata or {})
    # required columns: no definition levels to decode on a hit (NaN warm-up values are values, not nulls)
    assert not schema.field("ts").nullable and not schema.field("atr_14").nullable
    assert [pq.ParquetFile(a.path).schema.column(i).max_definition_level for i in (0, 1)] == [0, 0]


def test_rows_mismatch_and_bad_frame(fc: FeatureCache) -> None:
    _get(fc)
    with pytest.raises(IntegrityMismatch, match="rows"):
        _get(fc, _frame(1999))
    with pytest.raises(DataInvalid, match="'ts'"):
        _get(fc, _frame().drop(columns=["ts"]), dataset_hash="f" * 64)


def test_real_store_satisfies_the_protocol(store: Store, tmp_path: Path, kernel_calls: list[str]) -> None:
    assert isinstance(store, CacheMetaStore)
    fc = FeatureCache(tmp_path / "c", store, clock=Clock())
    _, e1 = _get(fc)
    _, e2 = _get(fc)
    assert (e1.hit, e2.hit, len(kernel_calls)) == (False, True, 1)
    e1.path.write_bytes(b"garbage")
    _, e3 = _get(fc)
    meta = store.get_cache_meta(e1.meta_hash)
    assert e3.rebuilt_corrupt and meta is not None and meta.digest == e1.digest


# ---------------------------------------------------------------------------------------------- corruption


@pytest.mark.parametrize("damage", ["flip", "delete", "truncate", "scramble", "empty"])
def test_corrupt_or_missing_file_is_detected_and_rebuilt(
    fc: FeatureCache, store: Store, kernel_calls: list[str], caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    good, e1 = _get(fc)
    original = e1.path.read_bytes()
    if damage == "flip":
        raw = bytearray(original)
        raw[len(raw) // 2] ^= 0x01
        e1.path.write_bytes(bytes(raw))
    elif damage == "delete":
        e1.path.unlink()
    elif damage == "scramble":  # the value column's pages no longer parse (pyarrow raises OSError, not Arrow's)
        chunk = pq.ParquetFile(e1.path).metadata.row_group(0).column(1)
        raw = bytearray(original)
        raw[chunk.data_page_offset:chunk.data_page_offset + chunk.total_compressed_size] = (
            b"\xff" * chunk.total_compressed_size)
        e1.path.write_bytes(bytes(raw))
    elif damage == "empty":  # a file of no bytes cannot be memory-mapped: read as empty, then found corrupt
        e1.path.write_bytes(b"")
    else:
        e1.path.write_bytes(original[:-10])
    built_at_before = store.get_cache_meta(e1.meta_hash).built_at  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        again, e2 = _get(fc)
    assert (e2.hit, e2.rebuilt_corrupt, e2.digest) == (False, True, e1.digest)
    assert fc.stats["cache_corrupt"] == 1 and len(kernel_calls) == 2
    assert any("CACHE_CORRUPT" in r.getMessage() and e1.meta_hash in r.getMessage() for r in caplog.records)
    assert e1.path.read_bytes() == original
    meta = store.get_cache_meta(e1.meta_hash)
    assert meta is not None and meta.built_at > built_at_before and len(cache_rows(store)) == 1
    pd.testing.assert_frame_equal(good, again)
    _, e3 = _get(fc)
    assert e3.hit and fc.stats == {"hits": 1, "misses": 1, "cache_corrupt": 1}


@pytest.mark.parametrize("damaged", [False, True])
def test_recheck_under_the_lock_uses_a_concurrent_build(
    tmp_path: Path, store: Store, kernel_calls: list[str], damaged: bool
) -> None:
    """Another process builds (or rebuilds) the key while we wait for the lock: we read its file, compute nothing."""
    other = FeatureCache(tmp_path / "cache", store)
    ours = FeatureCache(tmp_path / "cache", store)
    if damaged:
        _, first = _get(other)
        first.path.write_bytes(b"not parquet")
    calls_before = len(kernel_calls)
    real_lock = ours._key_lock

    @contextmanager
    def lock_after_other_process(path: Path) -> Iterator[None]:
        _get(other)  # the other process wins the lock and publishes
        with real_lock(path):
            yield

    ours._key_lock = lock_after_other_process  # type: ignore[method-assign]
    _, entry = _get(ours)
    assert entry.hit and entry.rebuilt_corrupt == damaged and len(kernel_calls) == calls_before + 1
    assert ours.stats == {"hits": 1, "misses": 0, "cache_corrupt": int(damaged)}
    assert len(cache_rows(store)) == 1


class PublishesOnFirstLookup:
    """A real Store through which another process publishes the key's file and row right after our file read,
    before our row lookup (the hook runs once, then every call goes straight to the Store)."""

    def __init__(self, store: Store, other: Callable[[], Any]) -> None:
        self.store = store
        self.other: Callable[[], Any] | None = other

    def get_cache_meta(self, meta_hash: str) -> CacheMeta | None:
        if self.other is not None:
            other, self.other = self.other, None
            other()
        return self.store.get_cache_meta(meta_hash)

    def add_cache_meta(self, meta: CacheMeta) -> None:
        self.store.add_cache_meta(meta)

    def replace_cache_meta(self, meta: CacheMeta) -> None:
        self.store.replace_cache_meta(meta)

    @property
    def database_identity(self) -> str | None:
        return self.store.database_identity


def test_a_file_published_between_our_read_and_our_lookup_is_a_clean_hit(
    tmp_path: Path, store: Store, kernel_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The file is read before the row is looked up (so its hashing overlaps the lookup): a file missing at that
    read but published, with its row, by the time of the lookup is read again, not reported CACHE_CORRUPT."""
    box: dict[str, FeatureCache] = {}
    hooked = PublishesOnFirstLookup(store, lambda: _get(box["other"]))
    assert isinstance(hooked, CacheMetaStore)
    box["other"] = FeatureCache(tmp_path / "cache", store)
    ours = FeatureCache(tmp_path / "cache", hooked)
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        _, entry = _get(ours)
    assert entry.hit and not entry.rebuilt_corrupt and len(kernel_calls) == 1  # the other process's build only
    assert ours.stats == {"hits": 1, "misses": 0, "cache_corrupt": 0}
    assert "CACHE_CORRUPT" not in caplog.text


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_atomic_write_leaves_no_temp_files(fc: FeatureCache, tmp_path: Path, store: Store,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, e = _get(fc)
    assert not [n for n in _files(tmp_path / "cache") if n.endswith(".tmp")]
    database_marker = marker_path(tmp_path / "cache", store.database_identity).name  # type: ignore[arg-type]
    assert set(_files(tmp_path / "cache")) == {f"{e.meta_hash}.parquet", f"{e.meta_hash}.lock", database_marker}

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "replace", failing_replace)
    with pytest.raises(CacheUnavailable, match="No space left"):
        _get(fc, params={"window": 3})
    assert not [n for n in _files(tmp_path / "cache") if n.endswith((".tmp", ".parquet")) and e.meta_hash not in n]
    assert len(cache_rows(store)) == 1  # no row for a file that was never published


def test_unwritable_cache_dir(tmp_path: Path) -> None:
    meta_store = sqlite_store(tmp_path / "meta.db")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(CacheUnavailable) as exc:
        FeatureCache(blocker / "cache", meta_store)
    assert str(blocker / "cache") in str(exc.value) and exc.value.error_code == "CACHE_UNAVAILABLE"
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(CacheUnavailable, match="ro"):
            FeatureCache(ro, meta_store)


# ---------------------------------------------------------------------------------------------- concurrency


def _build_in_process(cache_dir: str, db_url: str, barrier: Any, results: Any) -> None:
    fc = FeatureCache(cache_dir, Store(db_url))
    frame = _frame(200_000)
    barrier.wait()
    _, entry = fc.get_or_build(dataset_hash=DATASET, frame=frame, indicator="rsi", params={}, seed_root=1)
    results.put((entry.digest, entry.hit, str(entry.path)))
    dispose_engine(db_url)


def test_two_processes_build_the_same_key(tmp_path: Path, store: Store, db_url: str) -> None:
    """Two processes on one cache directory and one real Store (SQLite file / PostgreSQL) ask for the same key
    at once: the key's lock makes exactly one of them build it; the other waits and reads the built file."""
    assert cache_rows(store) == []
    out = race_in_processes(_build_in_process, [(str(tmp_path / "cache"), db_url)] * 2)
    digests, hits, paths = zip(*out, strict=True)
    assert len(set(digests)) == 1 and len(set(paths)) == 1
    assert sorted(hits) == [False, True]  # exactly one process computed; the other waited and read
    rows = cache_rows(store)
    assert len(rows) == 1 and rows[0][5] == digests[0]
    parquet = [p for p in (tmp_path / "cache").rglob("*.parquet")]
    assert len(parquet) == 1 and hashlib.sha256(parquet[0].read_bytes()).hexdigest() == digests[0]
    assert not list((tmp_path / "cache").rglob("*.tmp"))
