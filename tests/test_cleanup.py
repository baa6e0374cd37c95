"""`alphaforge runs delete` and `alphaforge runs gc` (alphaforge.runs.delete, alphaforge.runs.cache_gc), on SQLite and PostgreSQL.

Deletes cascade to every child table in one transaction (all or nothing, running runs refused); gc removes
exactly the unreferenced cache entries, orphan files and abandoned temp files (dry run: the same report,
nothing removed), old failed runs with --failed-older-than, and never what a pending or running run may be
building, even with runs executing in other processes while it loops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import race_in_processes
from filelock import FileLock
from sqlalchemy import func, insert, select, text, update

from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import FeaturesCacheMeta, Run, RunError
from alphaforge.db.store import Store
from alphaforge.db.urls import database_identity
from alphaforge.errors import RunAlreadyRunning, RunNotFound
from alphaforge.features.cache import FeatureCache
from alphaforge.features.cache_users import registered
from alphaforge.hashing import sha256_hex
from alphaforge.runs.cache_gc import TEMP_GRACE_S, gc
from alphaforge.runs.delete import delete_runs, run_tables
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import RunService
from alphaforge.runs.verify import verify_run

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import _entry_point, _env, assert_one_line_error, ok_json  # noqa: E402
from test_service import Clock  # noqa: E402

N_BARS = 300
CHILD_TABLES = {"trades", "equity", "validation", "metrics", "run_errors", "phase_metrics"}
OLD_MS = 1_000_000  # 1970: older than any limit


def config(fast: int = 5, slow: int = 20, **over: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "symbol": "SYN", "seed": 3,
        "strategy": {"name": "sma_cross", "params": {"fast": fast, "slow": slow}},
        "validation": {"permutation": {"n": 10}, "bootstrap": {"n": 50}},
    }
    raw.update(over)
    return load_config(raw)


def make_dataset(seed: int = 1) -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(N_BARS, seed=seed))


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def counts(store: Store, run_hash: str) -> dict[str, int]:
    """Rows of the run in every run table."""
    with store.session() as s:
        return {t.name: int(s.scalar(select(func.count()).select_from(t).where(t.c.run_hash == run_hash)) or 0)
                for t in run_tables()}


def cache_rows(store: Store) -> set[str]:
    with store.session() as s:
        return set(s.scalars(select(FeaturesCacheMeta.meta_hash)))


def files(cache_dir: Path) -> dict[str, int]:
    """Every file under the cache directory, with its size."""
    return {str(p): p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()}


def junk(store: Store, cache_dir: Path, data: Dataset, window: int) -> str:
    """A cache entry (row + file) built outside any run: referenced by no manifest."""
    _, entry = FeatureCache(cache_dir, store).get_or_build(
        dataset_hash=data.data_hash, frame=data.frame, indicator="sma", params={"window": window}, seed_root=1)
    return entry.meta_hash


def removed_keys(report: Any, kind: str) -> set[str]:
    return {r.meta_hash for r in report.removed if r.kind == kind}


# --------------------------------------------------------------------------- delete
def test_run_tables_are_every_table_referencing_runs() -> None:
    names = [t.name for t in run_tables()]
    assert set(names) == CHILD_TABLES | {"runs"} and names[-1] == "runs"


def test_delete_cascades_every_child_table_and_leaves_other_runs_untouched(
    store: Store, cache_dir: Path, dataset: Dataset
) -> None:
    pipeline = Pipeline(store, cache_dir=cache_dir)
    doomed = pipeline.run(config(5), dataset).run.run_hash
    kept = pipeline.run(config(8), dataset).run.run_hash
    with store.session() as s:  # a run_errors row too, so that every child table has rows of `doomed`
        s.execute(insert(RunError).values(run_hash=doomed, ts=1, phase="load", error_code="X", message="m",
                                          stack_hash=sha256_hex("m")))
    before, kept_before = counts(store, doomed), counts(store, kept)
    assert all(before[t] > 0 for t in CHILD_TABLES), before

    report = delete_runs(store, [doomed[:10]])

    assert report.runs == ((doomed, "completed"),) and report.rows == before
    assert all(n == 0 for n in counts(store, doomed).values())
    assert counts(store, kept) == kept_before
    assert verify_run(store, kept, cache_dir=cache_dir).ok
    with pytest.raises(RunNotFound):
        delete_runs(store, [doomed])


def test_delete_refuses_a_running_run_unless_it_is_stale(store: Store, dataset: Dataset) -> None:
    live = RunService(store)
    running = live.create(new_run(config(5), dataset)).run.run_hash
    assert live.claim(running)
    with pytest.raises(RunAlreadyRunning, match="runs recover"):
        delete_runs(store, [running])
    assert counts(store, running)["runs"] == 1

    dead = RunService(store, clock=Clock(OLD_MS))
    stale = dead.create(new_run(config(6), dataset)).run.run_hash
    assert dead.claim(stale)
    with store.session() as s:  # its heartbeat (stamped by the database clock) stopped in 1970: stale
        s.execute(update(Run).where(Run.run_hash == stale).values(heartbeat_at=OLD_MS))
    with pytest.raises(RunAlreadyRunning):  # all or nothing: the stale one stays too
        delete_runs(store, [stale, running])
    assert counts(store, stale)["runs"] == 1
    assert delete_runs(store, [stale]).runs == ((stale, "running"),)
    assert counts(store, stale)["runs"] == 0 and counts(store, running)["runs"] == 1


def _refuse_deleting(store: Store, run_hash: str) -> None:
    """A trigger that makes the database refuse to delete one runs row (a failure in mid-transaction)."""
    with store.session() as s:
        if store.dialect == "sqlite":
            s.execute(text(f"CREATE TRIGGER refuse_delete BEFORE DELETE ON runs WHEN old.run_hash = '{run_hash}' "
                           "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        else:
            s.execute(text(f"CREATE FUNCTION refuse_delete() RETURNS trigger AS $$ BEGIN IF OLD.run_hash = "
                           f"'{run_hash}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN OLD; END $$ "
                           "LANGUAGE plpgsql"))
            s.execute(text("CREATE TRIGGER refuse_delete BEFORE DELETE ON runs FOR EACH ROW "
                           "EXECUTE FUNCTION refuse_delete()"))


def _allow_deleting(store: Store) -> None:
    with store.session() as s:
        if store.dialect == "sqlite":
            s.execute(text("DROP TRIGGER refuse_delete"))
        else:
            s.execute(text("DROP TRIGGER refuse_delete ON runs"))
            s.execute(text("DROP FUNCTION refuse_delete()"))


def test_a_failure_in_the_middle_of_a_multi_run_delete_leaves_everything_in_place(
    store: Store, cache_dir: Path, dataset: Dataset
) -> None:
    pipeline = Pipeline(store, cache_dir=cache_dir)
    first, second = sorted(pipeline.run(config(fast), dataset).run.run_hash for fast in (5, 8))
    before = {h: counts(store, h) for h in (first, second)}
    _refuse_deleting(store, second)  # the children of both and the row of `first` are deleted before it fails
    try:
        with pytest.raises(Exception, match="refused"):
            delete_runs(store, [first, second])
        assert {h: counts(store, h) for h in (first, second)} == before
        with pytest.raises(RunNotFound):  # an unknown id: refused before anything is touched
            delete_runs(store, [first, "f" * 64])
        assert counts(store, first) == before[first]
    finally:
        _allow_deleting(store)
    assert delete_runs(store, [first, second]).rows["runs"] == 2


# --------------------------------------------------------------------------- gc
def _temp(cache_dir: Path, meta_hash: str, *, age_s: float) -> Path:
    """A publish() temp file of ``meta_hash``, last written ``age_s`` ago."""
    path = cache_dir / meta_hash[:2] / f".{meta_hash[:16]}-abc123{'.tmp'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_gc_removes_unreferenced_entries_orphans_and_abandoned_temps_and_dry_run_reports_the_same(
    store: Store, cache_dir: Path, dataset: Dataset
) -> None:
    done = Pipeline(store, cache_dir=cache_dir).run(config(5), dataset)
    referenced = {f["meta_hash"] for f in done.run.manifest["features"]}
    other = make_dataset(seed=2)
    junk_keys = {junk(store, cache_dir, other, w) for w in (3, 4)} | {junk(store, cache_dir, dataset, 6)}
    orphan = "ab" * 32  # a published file whose builder died before adding its row, and its lock file
    (cache_dir / "ab").mkdir(exist_ok=True)
    (cache_dir / "ab" / f"{orphan}.parquet").write_bytes(b"p" * 1234)
    (cache_dir / "ab" / f"{orphan}.lock").touch()
    old_temp = _temp(cache_dir, "cd" * 32, age_s=2 * TEMP_GRACE_S)  # a crashed publish
    young_temp = _temp(cache_dir, "ef" * 32, age_s=1)  # maybe being written right now
    building = next(iter(referenced))  # an old temp of a key whose build lock is held: a live build
    held_temp = _temp(cache_dir, building, age_s=2 * TEMP_GRACE_S)
    stranger = cache_dir / "notes.txt"
    stranger.write_text("not a cache file")

    before_files, before_rows = files(cache_dir), cache_rows(store)
    gone = {p: n for p, n in before_files.items()
            if any(Path(p).name.startswith(k) for k in junk_keys | {orphan}) or p == str(old_temp)}
    with FileLock(str(cache_dir / building[:2] / f"{building}.lock")):
        dry = gc(store, cache_dir, dry_run=True)
        assert files(cache_dir) == before_files and cache_rows(store) == before_rows
        real = gc(store, cache_dir)

    for report in (dry, real):
        assert removed_keys(report, "entry") == junk_keys
        assert removed_keys(report, "orphan") == {orphan}
        assert [r.files for r in report.removed if r.kind == "temp"] == [(str(old_temp),)]
        assert report.bytes_reclaimed == sum(gone.values())
        assert sorted(f for r in report.removed for f in r.files) == sorted(gone)
    assert [r.to_json() for r in dry.removed] == [r.to_json() for r in real.removed]
    assert cache_rows(store) == before_rows - junk_keys == referenced
    assert files(cache_dir) == {p: n for p, n in before_files.items() if p not in gone}
    assert young_temp.exists() and held_temp.exists() and stranger.exists()
    assert verify_run(store, done.run.run_hash, cache_dir=cache_dir).ok
    again = gc(store, cache_dir)
    assert [r.files for r in again.removed] == [(str(held_temp),)]  # its key is not being built any more


def test_gc_keeps_entries_of_the_dataset_of_pending_and_running_runs(
    store: Store, cache_dir: Path, dataset: Dataset
) -> None:
    key = junk(store, cache_dir, dataset, 6)  # what a run on `dataset` may be building right now
    service = RunService(store)
    run_hash = service.create(new_run(config(5), dataset)).run.run_hash
    assert not gc(store, cache_dir).removed  # pending
    service.claim(run_hash)
    assert not gc(store, cache_dir).removed  # running
    service.transition(run_hash, "failed")
    assert removed_keys(gc(store, cache_dir), "entry") == {key}
    assert not any(cache_dir.rglob(f"{key}.*"))


def test_gc_skips_a_key_whose_build_lock_is_held(store: Store, cache_dir: Path, dataset: Dataset) -> None:
    key = junk(store, cache_dir, make_dataset(seed=2), 6)
    with FileLock(str(cache_dir / key[:2] / f"{key}.lock")):  # another process is (re)building it
        report = gc(store, cache_dir)
    assert report.busy == [key] and not report.removed and cache_rows(store) == {key}
    assert removed_keys(gc(store, cache_dir), "entry") == {key} and not cache_rows(store)


def test_gc_failed_older_than_deletes_only_old_failed_runs(store: Store, dataset: Dataset) -> None:
    old, now = RunService(store, clock=Clock(OLD_MS)), RunService(store)

    def failed(service: RunService, fast: int) -> str:
        run_hash = service.create(new_run(config(fast), dataset)).run.run_hash
        service.claim(run_hash)
        service.fail(run_hash, ValueError("boom"), phase="features")
        return run_hash

    old_failed, young_failed = failed(old, 5), failed(now, 6)
    old_completed = old.create(new_run(config(7), dataset)).run.run_hash
    old.claim(old_completed)
    old.complete(old_completed, data_hash=dataset.data_hash)
    before = counts(store, old_failed)
    assert before["run_errors"] == 1 and before["phase_metrics"] == 0

    dry = gc(store, Path("unused"), dry_run=True, failed_older_than_days=1)
    real = gc(store, Path("unused"), failed_older_than_days=1)
    for report in (dry, real):
        assert report.failed_runs is not None
        assert report.failed_runs.runs == ((old_failed, "failed"),) and report.failed_runs.rows == before
    assert all(n == 0 for n in counts(store, old_failed).values())
    assert counts(store, young_failed)["runs"] == 1 and counts(store, old_completed)["runs"] == 1
    assert gc(store, Path("unused"), failed_older_than_days=0).failed_runs.runs == (  # type: ignore[union-attr]
        (young_failed, "failed"),)


# --------------------------------------------------------------------------- gc racing runs
N_WORKERS, RUNS_PER_WORKER = 2, 3


def _worker(url: str, cache: str, index: int, barrier: Any, out: Any) -> None:
    """Runs on the shared dataset, each with new indicator windows (so each builds cache entries)."""
    store, data = Store(url), make_dataset()
    barrier.wait()
    hashes = []
    for k in range(RUNS_PER_WORKER):
        fast = 2 + index * RUNS_PER_WORKER + k
        extra = {"features": {"indicators": [{"name": "ema", "params": {"span": 30 + fast}}]}}
        hashes.append(Pipeline(store, cache_dir=cache).run(config(fast, 40, **extra), data).run.run_hash)
    out.put(hashes)


def _collector(url: str, cache: str, expected: int, barrier: Any, out: Any) -> None:
    """gc passes in a loop while the runs execute, building unreferenced entries of the runs' dataset and of
    another one in between (those of the runs' dataset are protected until no run on it is active)."""
    store, data, other = Store(url), make_dataset(), make_dataset(seed=2)
    barrier.wait()
    removed, passes, deadline = 0, 0, time.monotonic() + 150
    while time.monotonic() < deadline:
        junk(store, Path(cache), other, 3 + passes % 5)
        junk(store, Path(cache), data, 50 + passes % 5)
        removed += len(gc(store, cache).removed)
        passes += 1
        with store.session() as s:
            if s.scalar(select(func.count()).select_from(Run).where(Run.status == "completed")) == expected:
                break
    out.put({"passes": passes, "removed": removed})


def _racer(role: str, url: str, cache: str, n: int, barrier: Any, out: Any) -> None:
    (_worker if role == "worker" else _collector)(url, cache, n, barrier, out)


def _manifest_features(store: Store, run_hash: str) -> list[str]:
    return [f["meta_hash"] for f in RunService(store).get(run_hash).manifest["features"]]


def test_gc_racing_runs_in_other_processes_never_breaks_a_run(db_url: str, cache_dir: Path) -> None:
    expected = N_WORKERS * RUNS_PER_WORKER
    roles = [("worker", db_url, str(cache_dir), i) for i in range(N_WORKERS)]
    results = race_in_processes(_racer, [*roles, ("collector", db_url, str(cache_dir), expected)], timeout_s=180)

    stats = next(r for r in results if isinstance(r, dict))
    assert stats["passes"] >= 2 and stats["removed"] > 0, stats  # gc was busy while the runs executed
    hashes = [h for r in results if isinstance(r, list) for h in r]
    assert len(set(hashes)) == expected
    store = Store(db_url)
    for run_hash in hashes:
        report = verify_run(store, run_hash, cache_dir=cache_dir)
        assert report.ok, report.failures
        assert all((cache_dir / f[:2] / f"{f}.parquet").is_file() for f in _manifest_features(store, run_hash))

    referenced = {f for h in hashes for f in _manifest_features(store, h)}
    final = gc(store, cache_dir)  # no run is active any more: every unreferenced entry goes, no referenced one
    assert not removed_keys(final, "entry") & referenced and cache_rows(store) == referenced
    assert all(verify_run(store, h, cache_dir=cache_dir).ok for h in hashes)


# --------------------------------------------------------------------------- CLI
def _cli(cwd: Path, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_entry_point(), *args], cwd=cwd, env=_env(), stdin=stdin, capture_output=True,
                          text=True, timeout=180, check=False)


def test_cli_delete_asks_on_a_terminal_refuses_without_one_and_gc_reports(
    db_url: str, tmp_path: Path, cache_dir: Path, dataset: Dataset
) -> None:
    store = Store(db_url)
    pipeline = Pipeline(store, cache_dir=cache_dir)
    first, second = (pipeline.run(config(fast), dataset).run.run_hash for fast in (5, 8))

    refused = _cli(tmp_path, "runs", "delete", first[:12], "--db", db_url)  # stdin is not a terminal
    assert "--yes" in assert_one_line_error(refused, 2, "CONFIG_INVALID")
    assert counts(store, first)["runs"] == 1

    import pty
    master, slave = pty.openpty()
    os.write(master, b"y\n")
    asked = _cli(tmp_path, "runs", "delete", first[:12], "--db", db_url, "--json", stdin=slave)
    os.close(slave)
    os.close(master)
    deleted = ok_json(asked)
    assert deleted["runs"] == [{"run_hash": first, "status": "completed"}] and deleted["rows"]["runs"] == 1
    assert first in asked.stderr  # the list and the question go to stderr, the JSON alone to stdout
    assert counts(store, first)["runs"] == 0

    human = _cli(tmp_path, "runs", "delete", second[:12], "--db", db_url, "--yes")
    assert human.returncode == 0 and "deleted 1 run(s)" in human.stdout and "equity" in human.stdout

    dry = ok_json(_cli(tmp_path, "runs", "gc", "--db", db_url, "--cache-dir", str(cache_dir), "--dry-run",
                       "--json"))
    assert dry["dry_run"] and dry["rows_removed"] == len(cache_rows(store)) > 0
    real = _cli(tmp_path, "runs", "gc", "--db", db_url, "--cache-dir", str(cache_dir), "--failed-older-than", "1")
    assert real.returncode == 0 and f"{dry['bytes_reclaimed']} bytes) reclaimed" in real.stdout
    assert not cache_rows(store)


# --------------------------------------------------------------------------- a cache directory shared by databases
@pytest.fixture
def two_databases(tmp_path: Path) -> Iterator[tuple[Path, Store, Store]]:
    """``(cache, ours, theirs)``: two SQLite files in one folder and the default cache directory they share."""
    ours, theirs = (Store(f"sqlite:///{tmp_path / name}") for name in ("ours.db", "theirs.db"))
    try:
        yield tmp_path / "alphaforge_cache", ours, theirs
    finally:
        dispose_engine(ours.url)
        dispose_engine(theirs.url)


def _drop_sqlite(store: Store) -> None:
    database = Path(store.engine.url.database or "")
    dispose_engine(store.url)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def test_database_identity_ignores_driver_and_password_and_resolves_sqlite_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_identity("sqlite:///research.db") == f"sqlite:///{tmp_path / 'research.db'}"
    assert database_identity("sqlite://") is None and database_identity("sqlite:///:memory:") is None
    assert database_identity("postgresql+psycopg://alice:s3cret@db.example:6543/lab") == \
        database_identity("postgresql://alice@db.example:6543/lab") == "postgresql://alice@db.example:6543/lab"
    assert database_identity("postgresql+psycopg://alice@db.example/lab") == "postgresql://alice@db.example:5432/lab"


def test_gc_keeps_the_files_of_another_database_sharing_the_cache_directory(
        two_databases: tuple[Path, Store, Store], dataset: Dataset) -> None:
    """Two SQLite files in one folder share the default cache directory. A gc pass of one removes its own
    unreferenced rows but no file the other's rows may point to, until the other database is gone."""
    cache, ours, theirs = two_databases
    mine, shared_key = junk(ours, cache, dataset, 7), junk(ours, cache, dataset, 9)
    assert junk(theirs, cache, dataset, 9) == shared_key  # one file, a row in each database
    their_own = junk(theirs, cache, dataset, 11)
    assert registered(cache) == sorted([ours.database_identity, theirs.database_identity])  # type: ignore[type-var]
    before = files(cache)

    dry = gc(ours, cache, dry_run=True)
    report = gc(ours, cache)

    assert report.shared_with == dry.shared_with == [theirs.database_identity]
    assert removed_keys(report, "entry") == removed_keys(dry, "entry") == {mine, shared_key}
    assert not removed_keys(report, "orphan") and report.bytes_reclaimed == 0
    assert files(cache) == before  # every file kept
    assert not cache_rows(ours) and cache_rows(theirs) == {shared_key, their_own}
    theirs_cache = FeatureCache(cache, theirs)
    for window in (9, 11):
        _, entry = theirs_cache.get_or_build(dataset_hash=dataset.data_hash, frame=dataset.frame,
                                             indicator="sma", params={"window": window}, seed_root=1)
        assert entry.hit and not entry.rebuilt_corrupt
    assert theirs_cache.stats["cache_corrupt"] == 0

    _drop_sqlite(theirs)  # the other database is gone: the directory is ours alone again
    again = gc(ours, cache)
    assert again.shared_with == [] and removed_keys(again, "orphan") == {mine, shared_key, their_own}
    assert not [p for p in files(cache) if p.endswith(".parquet")]


def test_gc_only_this_database_treats_a_shared_directory_as_its_own(
        two_databases: tuple[Path, Store, Store], dataset: Dataset) -> None:
    cache, ours, theirs = two_databases
    mine, their_own = junk(ours, cache, dataset, 7), junk(theirs, cache, dataset, 11)
    report = gc(ours, cache, only_this_database=True)
    assert report.shared_with == [] and removed_keys(report, "entry") == {mine}
    assert removed_keys(report, "orphan") == {their_own}
    _, entry = FeatureCache(cache, theirs).get_or_build(dataset_hash=dataset.data_hash, frame=dataset.frame,
                                                        indicator="sma", params={"window": 11}, seed_root=1)
    assert not entry.hit and entry.rebuilt_corrupt  # its file was taken: CACHE_CORRUPT, rebuilt


def test_cli_gc_reports_a_shared_cache_directory(
        two_databases: tuple[Path, Store, Store], dataset: Dataset, tmp_path: Path) -> None:
    cache, ours, theirs = two_databases
    junk(ours, cache, dataset, 7)
    junk(theirs, cache, dataset, 11)
    human = _cli(tmp_path, "runs", "gc", "--db", ours.url)
    assert human.returncode == 0 and "shared with 1 other database(s)" in human.stdout
    assert str(tmp_path / "theirs.db") in human.stdout
    alone = ok_json(_cli(tmp_path, "runs", "gc", "--db", ours.url, "--only-this-database", "--json"))
    assert alone["shared_with"] == [] and {r["kind"] for r in alone["removed"]} == {"orphan"}
