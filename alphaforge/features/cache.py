"""The versioned parquet feature cache.

One parquet file per cache key. The key is the data model's canonical spec object
``{dataset_hash, indicator, version, params, seed_root, code_version}``; ``meta_hash`` is the sha256 of its
canonical JSON and is the *only* thing a file path is derived from: ``<cache_dir>/<meta_hash[:2]>/<meta_hash>.parquet``.
A ``features_cache`` row (:class:`CacheMeta`, kept by a :class:`CacheMetaStore` — the SQL Store) records the
sha256 ``digest`` of the file's bytes.

* Files hold ``ts`` (int64) and the indicator's column (float32), written with fixed options and no
  timestamps, so the same input gives the same bytes and the same digest on every machine with the same
  pyarrow version. They are published atomically (temp file in the same directory, fsync, ``os.replace``).
* A hit reads the file once, checks its digest against the row, and decodes only the asked columns; nothing
  is computed. The digest is computed on a worker thread while the row is looked up and the columns decoded
  (:class:`alphaforge.features.cache_file.PendingFile`); nothing decoded is returned before it matches. A
  missing file or a digest mismatch is counted (``stats["cache_corrupt"]``), logged as ``CACHE_CORRUPT`` on
  ``alphaforge.features``, rebuilt, and the row replaced — never silently used.
* Builds of one key are serialized across processes by a per-key lock file (``<meta_hash>.lock``); the row is
  added idempotently, so racing builders leave one valid file and one row.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from filelock import FileLock
from filelock import Timeout as LockTimeout

from alphaforge._version import __version__
from alphaforge.errors import CacheCorrupt, CacheUnavailable, ConfigInvalid, DataInvalid, IntegrityMismatch
from alphaforge.features.cache_file import (
    LOCK_SUFFIX,
    CacheMeta,
    PendingFile,
    entry_path,
    parquet_bytes,
    publish,
)
from alphaforge.features.cache_users import register
from alphaforge.features.indicators import DEFAULT_CHUNK, Indicator, compute_chunked, get_indicator
from alphaforge.hashing import UINT32, canonical_json, hash_obj, sha256_hex

LOG = logging.getLogger("alphaforge.features")

_META_HASH = re.compile(r"^[0-9a-f]{64}$")


@runtime_checkable
class CacheMetaStore(Protocol):
    """Where ``features_cache`` rows live (implemented by :class:`alphaforge.db.store.Store`)."""

    def get_cache_meta(self, meta_hash: str) -> CacheMeta | None: ...

    def add_cache_meta(self, meta: CacheMeta) -> None:
        """Insert if absent; never fails when the row exists."""
        ...

    def replace_cache_meta(self, meta: CacheMeta) -> None:
        """Overwrite the row after a rebuild of a corrupt or missing file."""
        ...

    @property
    def database_identity(self) -> str | None:
        """The database the rows live in (:func:`alphaforge.db.urls.database_identity`; None: in memory),
        registered in every cache directory it uses (:mod:`alphaforge.features.cache_users`)."""
        ...


@dataclass(frozen=True)
class CacheEntry:
    """What :meth:`FeatureCache.get_or_build` did for one key."""

    meta_hash: str
    digest: str
    hit: bool  # True: served from a verified file, nothing computed
    rebuilt_corrupt: bool  # True: a corrupt or missing file was found and rebuilt
    path: Path
    column: str  # the indicator's output column name


def feature_spec(
    dataset_hash: str,
    indicator: str,
    version: str,
    params: Mapping[str, Any],
    seed_root: int,
    code_version: str,
) -> dict[str, Any]:
    """The data model's canonical cache-key object (``params`` should already be resolved)."""
    for name, value in (("dataset_hash", dataset_hash), ("indicator", indicator), ("version", version),
                        ("code_version", code_version)):
        if not isinstance(value, str) or not value:
            raise ConfigInvalid(f"feature spec field {name!r} must be a non-empty string, got {value!r}",
                                field=name)
    if isinstance(seed_root, bool) or not isinstance(seed_root, int | np.integer) or not 0 <= seed_root < UINT32:
        raise ConfigInvalid(f"feature spec field 'seed_root' must be a uint32, got {seed_root!r}", field="seed_root")
    spec = {
        "dataset_hash": dataset_hash,
        "indicator": indicator,
        "version": version,
        "params": {str(k): params[k] for k in sorted(params)},
        "seed_root": int(seed_root),
        "code_version": code_version,
    }
    try:
        canonical_json(spec)
    except (TypeError, ValueError) as exc:
        raise ConfigInvalid(f"feature params are not canonical-JSON serializable: {exc}", field="params") from exc
    return spec


def meta_hash_of(spec: Mapping[str, Any]) -> str:
    """sha256 of the spec's canonical JSON."""
    return hash_obj(spec)


@functools.cache
def code_version() -> str:
    """The git tree id (12 hex digits) of the ``alphaforge`` package directory at HEAD when running from a git
    checkout, else ``"v" + __version__``. Computed once per process.

    Only committed package source counts: commits touching tests or docs keep the same code version, and an
    uncommitted edit does not change it (bump the indicator's ``version`` when numerics change).
    """
    package_dir = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "-C", str(package_dir), "rev-parse", "HEAD:./"],  # noqa: S607
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    sha = done.stdout.strip() if done is not None and done.returncode == 0 else ""
    if re.fullmatch(r"[0-9a-f]{40,64}", sha):
        return sha[:12]
    return "v" + __version__


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


class FeatureCache:
    """Get-or-build for indicator columns, backed by parquet files and a :class:`CacheMetaStore`."""

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        meta_store: CacheMetaStore,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        clock: Callable[[], int] = _epoch_ms,
        lock_timeout: float = 600.0,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta_store = meta_store
        self.chunk_size = chunk_size
        self.clock = clock
        self.lock_timeout = lock_timeout
        #: hits: served from a verified file (nothing computed); misses: built because no row existed;
        #: cache_corrupt: missing or damaged files detected (each is rebuilt, or served if a concurrent process
        #: already rebuilt it).
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "cache_corrupt": 0}
        self._usable_dir(self.cache_dir)
        register(self.cache_dir, meta_store.database_identity)

    # ---------------------------------------------------------------------------------------------- public

    def path_for(self, meta_hash: str) -> Path:
        """``<cache_dir>/<meta_hash[:2]>/<meta_hash>.parquet`` — derived from the hash alone."""
        if not _META_HASH.fullmatch(meta_hash):
            raise ValueError(f"not a meta_hash: {meta_hash!r}")
        return entry_path(self.cache_dir, meta_hash)

    def get_or_build(
        self,
        *,
        dataset_hash: str,
        frame: pd.DataFrame,
        indicator: str,
        params: Mapping[str, Any],
        seed_root: int,
        columns: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, CacheEntry]:
        """The indicator's column for ``frame`` (with ``ts``), from the cache or built and cached.

        ``frame`` is a normalized OHLCV frame (an int64 ``ts`` column plus the indicator's inputs) whose content
        hash is ``dataset_hash``. ``columns`` projects the result onto some of ``["ts", <column>]``.
        """
        spec_ind = get_indicator(indicator)
        resolved = spec_ind.resolve(params)
        column = spec_ind.column_name(resolved)
        wanted = self._projection(columns, column)
        spec = feature_spec(dataset_hash, spec_ind.name, spec_ind.version, resolved, seed_root, code_version())
        meta_hash = meta_hash_of(spec)
        path = self.path_for(meta_hash)

        corrupt = False
        pending = PendingFile(path)  # read now; its digest is computed while the row is looked up and decoded
        meta = self.meta_store.get_cache_meta(meta_hash)
        if meta is not None:
            self._check_rows(meta, frame)
            if pending.error is not None:  # read before another process published the file and its row
                pending = PendingFile(path)
            try:
                return self._hit(pending, meta, wanted, column)
            except CacheCorrupt as exc:
                self._report_corrupt(exc)
                corrupt = True

        with self._key_lock(path):
            meta = self.meta_store.get_cache_meta(meta_hash)  # another process may have built it meanwhile
            if meta is not None:
                self._check_rows(meta, frame)
                try:
                    return self._hit(PendingFile(path), meta, wanted, column, rebuilt_corrupt=corrupt)
                except CacheCorrupt as exc:
                    if not corrupt:  # the same damage seen before the lock is counted once
                        self._report_corrupt(exc)
            return self._build(spec, meta_hash, path, spec_ind, resolved, frame, column, wanted,
                               replace=meta is not None)

    # ---------------------------------------------------------------------------------------------- internals

    def _usable_dir(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=directory)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise CacheUnavailable(
                f"feature cache directory {str(directory)!r} cannot be created or written "
                f"({exc.strerror or exc}); create it with write permission for this user or set another "
                "cache directory",
                directory=str(directory),
            ) from exc

    @staticmethod
    def _projection(columns: Sequence[str] | None, column: str) -> list[str]:
        available = ["ts", column]
        if columns is None:
            return available
        wanted = [columns] if isinstance(columns, str) else list(columns)
        bad = [c for c in wanted if c not in available]
        if not wanted or bad or len(set(wanted)) != len(wanted):
            raise ConfigInvalid(
                f"columns {wanted!r} must name distinct columns among {available}", field="columns"
            )
        return wanted

    @staticmethod
    def _check_rows(meta: CacheMeta, frame: pd.DataFrame) -> None:
        if meta.rows != len(frame):
            raise IntegrityMismatch(
                f"cache entry {meta.meta_hash} has {meta.rows} rows but the frame has {len(frame)}: the frame does "
                "not match its dataset_hash; recompute dataset_hash from this frame",
                meta_hash=meta.meta_hash,
            )

    def _hit(self, pending: PendingFile, meta: CacheMeta, wanted: list[str], column: str, *,
             rebuilt_corrupt: bool = False) -> tuple[pd.DataFrame, CacheEntry]:
        frame = pending.decode_verified(meta, wanted)
        self.stats["hits"] += 1
        return frame, CacheEntry(meta.meta_hash, meta.digest, True, rebuilt_corrupt, pending.path, column)

    def _report_corrupt(self, exc: CacheCorrupt) -> None:
        self.stats["cache_corrupt"] += 1
        LOG.warning("CACHE_CORRUPT %s; rebuilding", exc.message,
                    extra={"error_code": exc.error_code, "meta_hash": exc.context.get("meta_hash")})

    @contextmanager
    def _key_lock(self, path: Path) -> Iterator[None]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheUnavailable(f"feature cache directory {str(path.parent)!r} cannot be created "
                                   f"({exc.strerror or exc}); check permissions", directory=str(path.parent)) from exc
        lock = FileLock(str(path.with_suffix(LOCK_SUFFIX)), timeout=self.lock_timeout)
        try:
            with lock:
                yield
        except LockTimeout as exc:
            raise CacheUnavailable(f"timed out after {self.lock_timeout}s waiting for the build lock of {path}; "
                                   "another process is building this feature", directory=str(path.parent)) from exc

    def _build(self, spec: dict[str, Any], meta_hash: str, path: Path, spec_ind: Indicator,
               params: dict[str, Any], frame: pd.DataFrame, column: str, wanted: list[str],
               *, replace: bool) -> tuple[pd.DataFrame, CacheEntry]:
        ts = _timestamps(frame)
        values = compute_chunked(spec_ind, frame, params, self.chunk_size)
        data = parquet_bytes(ts, column, values)
        digest = sha256_hex(data)
        publish(path, data)
        meta = CacheMeta(meta_hash, canonical_json(spec), int(self.clock()), len(values), 2, digest)
        if replace:
            self.meta_store.replace_cache_meta(meta)
        else:
            self.meta_store.add_cache_meta(meta)
            self.stats["misses"] += 1
        built = {"ts": ts, column: values}
        result = pd.DataFrame({name: built[name] for name in wanted}, copy=False)
        return result, CacheEntry(meta_hash, digest, False, replace, path, column)

def _timestamps(frame: pd.DataFrame) -> np.ndarray:
    if "ts" not in frame.columns:
        raise DataInvalid("the frame has no 'ts' column (int64 epoch ns); load it with alphaforge.data.load_ohlcv",
                          column="ts")
    ts = frame["ts"].to_numpy()
    if np.issubdtype(ts.dtype, np.datetime64):
        ts = ts.astype("datetime64[ns]").astype(np.int64)
    if not np.issubdtype(ts.dtype, np.integer):
        raise DataInvalid(f"column 'ts' must be int64 epoch ns, got dtype {ts.dtype}", column="ts")
    return ts.astype(np.int64, copy=False)
