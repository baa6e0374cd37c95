"""Collecting feature-cache garbage (``alphaforge runs gc``).

A ``features_cache`` entry (row + ``<meta_hash>.parquet`` + its build lock ``<meta_hash>.lock``) is
*protected* when a run's manifest lists it (``manifest.features[].meta_hash``, written at finalize), or when
its ``dataset_hash`` (in ``spec_json``) is the ``data_hash`` of a pending or running run: such a run may be
building or reading it right now and lists it only when it completes. Every other entry is removed; so are
files with no row at all (orphans, e.g. left by a crash between publishing a file and adding its row) and
temp files of :func:`alphaforge.features.cache_file.publish` that no live process is writing.
``--failed-older-than`` first deletes failed runs last updated before the limit (as above, in a
transaction of their own), so the entries only they referenced go in the same pass.

One pass is one write transaction that excludes the creation of runs: on SQLite the transaction holds the
write lock (``BEGIN IMMEDIATE``), which a run's INSERT waits for; on PostgreSQL it starts with ``LOCK TABLE
runs IN SHARE MODE``, which blocks INSERT (and UPDATE) on runs until commit. Inside it: read the protection
(manifests, data_hash of active runs) → for each unprotected key, take the key's build lock without waiting
(a key whose lock is held is being built: skipped and reported as busy) → delete the row → unlink the files
→ commit → release the key locks. The files are unlinked *before* the commit. The pass is short (no
computation, one read of the runs, row deletes and unlinks), but while it lasts run writes wait: on
PostgreSQL the SHARE lock also holds up heartbeats, claims and completions (and waits for open writes of
runs to finish); on SQLite every writer queues on the busy timeout, as for any write transaction.

Interleavings with :meth:`alphaforge.features.cache.FeatureCache.get_or_build` (read file → look up row →
verify digest → hit; else take the key lock → look up again → build → publish file → add row, lock released)
in a pipeline run ``R`` (created, i.e. committed, before it touches the cache):

* ``R`` committed before the gc transaction began: ``R`` is pending or running (its data_hash protects every
  entry of its dataset), or completed (its manifest protects its entries). Nothing it uses is touched.
* ``R`` is created while the transaction runs: its INSERT waits for the commit; by then the rows and the files
  of the removed entries are both gone, so ``R`` misses and rebuilds them. (Unlinking after the commit would
  let ``R`` publish a new file that the gc then unlinks, leaving a row without its file.)
* A builder of a removed key that started before the gc took the key lock (not a run — a library caller using
  :class:`~alphaforge.features.cache.FeatureCache` directly, or the zombie of a recovered run) holds the key
  lock: the gc skips the key. One that comes after waits on the key lock until the gc commits, then finds no
  row and builds. A reader that read the file before it was unlinked and looks the row up before the commit
  gets a verified hit of the bytes it holds; one that finds the file gone but the row still there reports
  CACHE_CORRUPT, waits for the key lock and rebuilds. Either way the result is a file and its row, or neither.
* Orphans: a file without a row is removed only under its key lock and after a fresh look-up still finds no
  row (on PostgreSQL a builder's row can commit during the gc transaction; it adds the row while holding the
  key lock, so the look-up after the lock sees it). A file a manifest lists is never removed, row or not.
* Temp files are written only under their key's lock, between ``mkstemp`` and ``os.replace``: one is removed
  only when it is older than :data:`TEMP_GRACE_S` and no lock of a key it can belong to
  (``.<meta_hash[:16]>-…``) is held.
* If the commit fails after the unlinks, the removed entries keep rows without files: they are unreferenced,
  and the next reader reports CACHE_CORRUPT and rebuilds them (or the next gc removes them).

Lock files are unlinked only while the gc holds them; a process that opened the old lock file meanwhile may
build concurrently with one that opens the new one, which the cache tolerates (identical bytes, idempotent
row). Shard directories (``<meta_hash[:2]>/``) are never removed: a builder creates its shard before locking.
A database may serve several cache directories: a gc pass removes rows for the whole database and files
under the one cache directory it is given. A cache directory may serve several databases (two SQLite files in
one folder share the default one): every database that uses it is registered there
(:mod:`alphaforge.features.cache_users`), and while another one is, a pass removes this database's unreferenced
rows but keeps every file (the same key's file may be another database's entry) and every orphan (it may be
another database's), reporting the other databases in ``shared_with``. A database registered after the pass
read the markers may lose a file it has just built to the pass: its next read reports CACHE_CORRUPT and rebuilds
it, as for any missing file.

Looking up protection reads every run's manifest once per pass; ``runs(status, updated_at)`` serves the
failed-runs query. ``--dry-run`` reads the same sources in a read-only transaction and only probes the build
locks (holding none, creating no lock file), so it reports the same set as a real pass would.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from alphaforge.db.models import FeaturesCacheMeta, Run
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus
from alphaforge.features.cache_file import LOCK_SUFFIX, PARQUET_SUFFIX, TEMP_SUFFIX, entry_path
from alphaforge.features.cache_users import registered
from alphaforge.runs.delete import DeleteReport, failed_runs, read_or_write
from alphaforge.runs.service import epoch_ms

#: Statuses of runs that may be building or reading cache entries of their dataset right now.
ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)
#: A temp file younger than this may still be in the middle of :func:`~alphaforge.features.cache_file.publish`.
TEMP_GRACE_S = 3600.0

_META_HASH = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_TEMP = re.compile(r"\.(?:([0-9a-f]{16})-)?.*" + re.escape(TEMP_SUFFIX))


@dataclass(frozen=True)
class CacheRemoval:
    """One thing a gc pass removes. ``kind``: ``entry`` (a features_cache row and its files), ``orphan``
    (files of a key with no row) or ``temp`` (an abandoned temp file)."""

    kind: str
    meta_hash: str | None
    indicator: str | None
    dataset_hash: str | None
    files: tuple[str, ...]
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "meta_hash": self.meta_hash, "indicator": self.indicator,
                "dataset_hash": self.dataset_hash, "files": list(self.files), "bytes": self.bytes}


@dataclass
class GcReport:
    """What a gc pass removed (or, dry, would remove) and the bytes reclaimed on disk."""

    dry_run: bool
    cache_dir: str
    failed_runs: DeleteReport | None = None
    removed: list[CacheRemoval] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # keys skipped: a process holds their build lock
    #: other databases registered in the cache directory (:mod:`alphaforge.features.cache_users`): while there
    #: is one, the pass removes this database's rows only, and no file but abandoned temp files
    shared_with: list[str] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        return sum(r.bytes for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "cache_dir": self.cache_dir,
                "failed_runs": None if self.failed_runs is None else self.failed_runs.to_json(),
                "removed": [r.to_json() for r in self.removed], "busy": self.busy,
                "shared_with": self.shared_with,
                "rows_removed": sum(r.kind == "entry" for r in self.removed),
                "bytes_reclaimed": self.bytes_reclaimed}


@dataclass
class _KeyFiles:
    parquet: Path | None = None
    lock: Path | None = None

    def present(self) -> list[Path]:
        return [p for p in (self.parquet, self.lock) if p is not None]


def _scan(cache_dir: Path) -> tuple[dict[str, _KeyFiles], list[Path]]:
    """The cache's files by key (``<shard>/<meta_hash>.parquet|.lock``) and its temp files (``.….tmp``, in the
    shards or the root). Anything else is not a cache file and is left alone."""
    keys: dict[str, _KeyFiles] = {}
    temps: list[Path] = []
    if not cache_dir.is_dir():
        return keys, temps
    shards = [d for d in cache_dir.iterdir() if _SHARD.fullmatch(d.name) and d.is_dir()]
    for path in [p for d in [cache_dir, *shards] for p in d.iterdir()]:
        if _TEMP.fullmatch(path.name) and path.is_file():
            temps.append(path)
        elif path.parent != cache_dir and _META_HASH.fullmatch(path.stem) and path.stem[:2] == path.parent.name:
            files = keys.setdefault(path.stem, _KeyFiles())
            if path.suffix == PARQUET_SUFFIX:
                files.parquet = path
            elif path.suffix == LOCK_SUFFIX:
                files.lock = path
    return keys, sorted(temps)


def _manifest_features(manifest_json: str) -> set[str]:
    try:
        features = json.loads(manifest_json).get("features")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(features, list):
        return set()
    return {f["meta_hash"] for f in features if isinstance(f, dict) and isinstance(f.get("meta_hash"), str)}


def _spec(spec_json: str) -> tuple[str | None, str | None]:
    """(dataset_hash, indicator) of a features_cache row; None when the spec cannot be read."""
    try:
        spec = json.loads(spec_json)
    except ValueError:
        return None, None
    if not isinstance(spec, dict):
        return None, None
    return spec.get("dataset_hash"), spec.get("indicator")


def _protection(session: Session, exclude: set[str]) -> tuple[set[str], set[str]]:
    """(meta_hashes some manifest lists, data_hash of every pending or running run), ignoring ``exclude``."""
    referenced: set[str] = set()
    active: set[str] = set()
    for run_hash, status, data_hash, manifest_json in session.execute(
        select(Run.run_hash, Run.status, Run.data_hash, Run.manifest_json)
    ):
        if run_hash in exclude:
            continue
        if status in ACTIVE_STATUSES:
            active.add(data_hash)
        referenced |= _manifest_features(manifest_json)
    return referenced, active


def _lock_path(cache_dir: Path, meta_hash: str) -> Path:
    return entry_path(cache_dir, meta_hash, LOCK_SUFFIX)


class _KeyLocks:
    """The build locks of the keys a gc pass removes, taken without waiting: a real pass holds them until after
    its commit; a dry run only probes the lock files that exist (creating none) and lets go at once."""

    def __init__(self, stack: ExitStack, cache_dir: Path, *, hold: bool) -> None:
        self.stack, self.cache_dir, self.hold = stack, cache_dir, hold
        self.held: set[str] = set()

    def take(self, meta_hash: str) -> bool:
        """True if no other process holds the key's build lock."""
        path = _lock_path(self.cache_dir, meta_hash)
        if meta_hash in self.held or not (self.hold or path.exists()):
            return True
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except LockTimeout:
            return False
        except FileNotFoundError:  # the shard itself is gone: nobody can be building in it
            return True
        if self.hold:
            self.stack.callback(lock.release)
            self.held.add(meta_hash)
        else:
            lock.release()
        return True


def _unlink(paths: list[Path], *, dry_run: bool) -> tuple[tuple[str, ...], int]:
    """Remove the files (dry: only measure them); the names and bytes of those that existed."""
    names, size = [], 0
    for path in paths:
        try:
            size += path.stat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
        names.append(str(path))
    return tuple(names), size


def _collect_cache(store: Store, cache_dir: Path, *, dry_run: bool, exclude: set[str],
                   temp_grace_s: float, report: GcReport) -> None:
    meta = FeaturesCacheMeta
    with ExitStack() as stack:  # key locks: released after the session below has committed
        locks = _KeyLocks(stack, cache_dir, hold=not dry_run)
        with read_or_write(store, read_only=dry_run) as s:
            if not dry_run and store.dialect == "postgresql":
                s.execute(text("LOCK TABLE runs IN SHARE MODE"))  # no run is created until we commit
            referenced, active = _protection(s, exclude)
            rows = {mh: _spec(spec) for mh, spec in s.execute(select(meta.meta_hash, meta.spec_json))}
            keys, temps = _scan(cache_dir)
            shared = bool(report.shared_with)
            for meta_hash in sorted((set(rows) | set(keys)) - referenced):
                dataset_hash, indicator = rows.get(meta_hash, (None, None))
                has_row = meta_hash in rows
                if shared and not has_row:
                    continue  # another database's entry, as far as this one can tell
                if has_row and active and (dataset_hash is None or dataset_hash in active):
                    continue  # a pending or running run may be building or using it
                if not locks.take(meta_hash):
                    report.busy.append(meta_hash)
                    continue
                if has_row and not dry_run:
                    s.execute(delete(meta).where(meta.meta_hash == meta_hash))
                elif not has_row and not dry_run and s.scalar(
                    select(meta.meta_hash).where(meta.meta_hash == meta_hash)
                ) is not None:
                    continue  # its builder added the row since we listed the rows
                names: tuple[str, ...] = ()
                size = 0
                if not shared:  # else only the row goes: its file may serve the same key in another database
                    names, size = _unlink(keys.get(meta_hash, _KeyFiles()).present(), dry_run=dry_run)
                    if not dry_run:  # taking the lock may have created its file
                        _lock_path(cache_dir, meta_hash).unlink(missing_ok=True)
                report.removed.append(CacheRemoval("entry" if has_row else "orphan", meta_hash, indicator,
                                                   dataset_hash, names, size))
            _collect_temps(temps, keys, locks, temp_grace_s, dry_run=dry_run, report=report)


def _collect_temps(temps: list[Path], keys: dict[str, _KeyFiles], locks: _KeyLocks, grace_s: float, *,
                   dry_run: bool, report: GcReport) -> None:
    now = time.time()
    for path in temps:
        try:
            if now - path.stat().st_mtime < grace_s:
                continue  # may still be in the middle of a publish
        except FileNotFoundError:
            continue
        match = _TEMP.fullmatch(path.name)
        prefix = match.group(1) if match else None
        owners = [k for k, f in keys.items() if prefix and k.startswith(prefix) and f.lock is not None
                  and path.parent.name == k[:2]]
        if not all(locks.take(k) for k in owners):
            continue  # its key is being built: the temp file may be the build's
        names, size = _unlink([path], dry_run=dry_run)
        if names:
            report.removed.append(CacheRemoval("temp", None, None, None, names, size))


def gc(store: Store, cache_dir: str | os.PathLike[str], *, dry_run: bool = False,
       failed_older_than_days: float | None = None, temp_grace_s: float = TEMP_GRACE_S,
       only_this_database: bool = False) -> GcReport:
    """Remove unreferenced feature-cache entries, orphan and abandoned temp cache files, and (with
    ``failed_older_than_days``) old failed runs; see the module docstring for what is protected and why.

    While another database is registered in ``cache_dir`` (:mod:`alphaforge.features.cache_users`), only this
    database's unreferenced rows are removed, and no file but abandoned temp files; ``only_this_database``
    treats the directory as this database's alone (the files other databases' rows point to go too: they
    report CACHE_CORRUPT and rebuild them when they next need them)."""
    identity = store.database_identity
    report = GcReport(dry_run=dry_run, cache_dir=str(cache_dir),
                      shared_with=[] if only_this_database else
                      [d for d in registered(Path(cache_dir)) if d != identity])
    exclude: set[str] = set()
    if failed_older_than_days is not None:
        report.failed_runs = failed_runs(store, failed_older_than_days, dry_run=dry_run, now_ms=epoch_ms())
        exclude = {h for h, _ in report.failed_runs.runs}
    _collect_cache(store, Path(cache_dir), dry_run=dry_run, exclude=exclude, temp_grace_s=temp_grace_s,
                   report=report)
    return report
