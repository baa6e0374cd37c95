"""Many processes on one database at once (spawned, released together at a barrier), on SQLite and PostgreSQL.

* 8 processes, each a DIFFERENT run: all complete, no "database is locked" (or any other error) in any process,
  and no row lost — per-run row counts, metrics and sha256 checksums of the trades/equity frames read back are
  exactly those of the same configs run one after another in a single process into a separate database.
* 4 processes, the SAME run: one runs row, one execution (one "backtest" phase row); the other three wait for
  it and report ``reused=True``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import create_pg_database, drop_pg_database, race_in_processes
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from alphaforge.config import load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import Equity, Metric, PhaseMetric, Run, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.runs.pipeline import Pipeline

N_BARS = 400
N_DIFFERENT = 8
N_SAME = 4
FASTS = (3, 5, 8, 10, 12, 15, 20, 25)  # 8 different runs; slow = 40 shared (one feature, 8 processes)
TIMEOUT_S = 240


def _raw(fast: int) -> dict[str, Any]:
    return {
        "symbol": "SYN", "seed": 17,
        "strategy": {"name": "sma_cross", "params": {"fast": fast, "slow": 40}},
        "execution": {"allow_short": True},
        "validation": {"permutation": {"n": 10}, "bootstrap": {"n": 100},
                       "walk_forward": {"folds": 3, "mode": "fixed"}},
    }


def _dataset() -> Dataset:
    return dataset_from_frame(synthetic_ohlcv(N_BARS, seed=21))


def _submit(url: str, cache: str, raw: dict[str, Any], barrier: Any, out: Any) -> None:
    """One process: open the store, load the data, wait for everyone, run; report outcome + everything logged."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    sys.stderr = captured  # warnings and anything else printed go to the report too
    report: dict[str, Any] = {"pid": os.getpid(), "error": None}
    try:
        store = Store(url)
        dataset, config = _dataset(), load_config(raw)
        barrier.wait(timeout=120)
        started = time.perf_counter()
        outcome = Pipeline(store, cache_dir=cache).run(config, dataset)
        report.update(seconds=time.perf_counter() - started, run_hash=outcome.run.run_hash,
                      status=outcome.run.status, reused=outcome.reused, metrics=outcome.metrics)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, which asserts on it
        report.update(_error_fields(exc), error=traceback.format_exc())
    finally:
        report["log"] = captured.getvalue()
        out.put(report)


def _error_fields(exc: BaseException) -> dict[str, Any]:
    """What the parent asserts on: the exception's class name and its error_code (None for a non-AlphaForge one)."""
    return {"error_type": type(exc).__name__, "error_code": getattr(exc, "error_code", None)}


def _spawn_all(url: str, cache: Path, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return race_in_processes(_submit, [(url, str(cache), raw) for raw in raws], timeout_s=TIMEOUT_S)


def _assert_clean(reports: list[dict[str, Any]]) -> None:
    """No process raised, none logged or printed anything (in particular no "database is locked")."""
    for r in reports:
        assert "database is locked" not in (r["error"] or "") + r["log"], r
        assert r["error"] is None, r["error"]
        assert r["log"] == "", r["log"]


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest()


def _fingerprint(store: Store, run_hash: str) -> dict[str, Any]:
    """Everything a run stored, reduced to counts, checksums and values."""
    with store.session() as s:
        counts = {model.__tablename__: int(s.scalar(  # type: ignore[attr-defined]
            select(func.count()).select_from(model).where(model.run_hash == run_hash)  # type: ignore[attr-defined]
        ) or 0) for model in (Trade, Equity, Validation, Metric, RunError)}
        status = s.get(Run, run_hash).status  # type: ignore[union-attr]
    trades, equity = store.read_trades(run_hash), store.read_equity(run_hash)
    validation = store.read_validation(run_hash)
    return {"status": status, "counts": counts, "trades_sha256": _digest(trades), "equity_sha256": _digest(equity),
            "metrics": store.read_all_metrics(run_hash), "validation": validation}


def _equity_rows(store: Store, run_hash: str) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Equity).where(Equity.run_hash == run_hash)) or 0)


def _phase_counts(store: Store, phase: str) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(PhaseMetric.run_hash, func.count()).where(PhaseMetric.phase == phase)
                         .group_by(PhaseMetric.run_hash)).all()
    return {h: int(n) for h, n in rows}


def _run_reference(url: str, cache: Path) -> dict[str, dict[str, Any]]:
    store, dataset = Store(url), _dataset()
    pipeline = Pipeline(store, cache_dir=cache)
    hashes = [pipeline.run(load_config(_raw(fast)), dataset).run.run_hash for fast in FASTS]
    return {h: _fingerprint(store, h) for h in hashes}


@pytest.fixture(scope="module")
def _references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    built: dict[str, Any] = {}
    yield built
    for url in built.get("_urls", []):
        (drop_pg_database if url.startswith("postgresql") else dispose_engine)(url)


@pytest.fixture
def reference(backend: str, _references: dict[str, Any],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The 8 configs run one after another in ONE process into a separate database of the same backend
    (built once per backend)."""
    if backend not in _references:
        tmp = tmp_path_factory.mktemp(f"reference_{backend}")
        url = f"sqlite:///{tmp / 'reference.db'}" if backend == "sqlite" else create_pg_database()
        _references.setdefault("_urls", []).append(url)
        _references[backend] = _run_reference(url, tmp / "cache")
    return _references[backend]  # type: ignore[no-any-return]


def test_eight_processes_each_submitting_a_different_run_lose_nothing(
    store: Store, db_url: str, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    reports = _spawn_all(db_url, tmp_path / "cache", [_raw(fast) for fast in FASTS])
    _assert_clean(reports)
    assert len({r["pid"] for r in reports}) == N_DIFFERENT
    assert all(r["status"] == "completed" and not r["reused"] for r in reports)
    assert {r["run_hash"] for r in reports} == set(reference)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == N_DIFFERENT
        assert s.scalar(select(func.count()).select_from(RunError)) == 0
    assert _phase_counts(store, "backtest") == {h: 1 for h in reference}
    for run_hash, expected in reference.items():
        got = _fingerprint(store, run_hash)
        assert got["counts"]["equity"] == N_BARS and got["counts"]["trades"] > 0
        assert got == expected, run_hash
    for r in reports:  # what each process was told is what the database holds
        assert r["metrics"] == reference[r["run_hash"]]["metrics"]["backtest"]


def test_four_processes_submitting_the_same_run_execute_it_once(
    store: Store, db_url: str, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    reports = _spawn_all(db_url, tmp_path / "cache", [_raw(FASTS[0])] * N_SAME)
    _assert_clean(reports)
    assert len({r["run_hash"] for r in reports}) == 1 and {r["status"] for r in reports} == {"completed"}
    assert sorted(r["reused"] for r in reports) == [False] + [True] * (N_SAME - 1)
    run_hash = reports[0]["run_hash"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
    assert _phase_counts(store, "backtest") == {run_hash: 1}
    assert _phase_counts(store, "features") == {run_hash: 1}
    assert all(r["metrics"] == reports[0]["metrics"] for r in reports)
    assert _fingerprint(store, run_hash) == reference[run_hash]


def _run_one(url: str, cache: str, raw: dict[str, Any], out: Any) -> None:
    report: dict[str, Any] = {"pid": os.getpid(), "error": None}
    try:
        outcome = Pipeline(Store(url), cache_dir=cache).run(load_config(raw), _dataset())
        report.update(run_hash=outcome.run.run_hash, status=outcome.run.status, reused=outcome.reused)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        report.update(_error_fields(exc), error=f"{type(exc).__name__}: {exc}")
    out.put(report)


def _wait_until(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # reproduced on PostgreSQL too (same code path)
def test_a_recovered_attempt_that_wakes_up_does_not_touch_the_new_attempt(
    store: Store, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is frozen (SIGSTOP) mid-validation until its heartbeat is stale; B recovers the run (RUN_ABANDONED),
    claims it and is frozen mid-validation in turn; A thaws and runs to its end; then B thaws.

    A lost the run when it was recovered: it must not write results, complete or fail B's attempt. B must
    complete normally.

    A run's trades and equity rows are written while its validation computes, so each worker is frozen only
    once its rows are in (never inside a write transaction, which would hold SQLite's write lock); the rows
    present while B owns the run are then exactly B's, and A's recovery removed A's."""
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", "1")  # inherited by the spawned processes
    raw = _raw(FASTS[0])
    raw["validation"]["permutation"]["n"] = 3000  # a validation phase of a few seconds to freeze in
    ctx = mp.get_context("spawn")
    out = ctx.Queue()

    def run_row() -> Any:
        with store.session() as s:
            return s.execute(select(Run.run_hash, Run.status, Run.worker)).first()

    def in_validation(pid: int, attempts: int) -> bool:
        row = run_row()
        return row is not None and row.status == "running" and str(row.worker).endswith(f":{pid}") \
            and _phase_counts(store, "validation").get(row.run_hash, 0) == attempts \
            and _equity_rows(store, row.run_hash) == N_BARS  # its rows are written

    a = ctx.Process(target=_run_one, args=(db_url, str(tmp_path / "cache"), raw, out))
    a.start()
    b = ctx.Process(target=_run_one, args=(db_url, str(tmp_path / "cache"), raw, out))
    try:
        _wait_until(lambda: in_validation(a.pid, 1), "A in validation")  # type: ignore[arg-type]
        os.kill(a.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        time.sleep(1.5)  # A's heartbeat is now stale
        b.start()
        _wait_until(lambda: in_validation(b.pid, 2), "B to recover the run, claim it, reach validation")  # type: ignore[arg-type]
        os.kill(b.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        os.kill(a.pid, signal.SIGCONT)  # type: ignore[arg-type]
        report_a = out.get(timeout=120)
        frozen_b = _fingerprint(store, run_row().run_hash)
        snapshot = (run_row().status, str(run_row().worker).rpartition(":")[2])
        os.kill(b.pid, signal.SIGCONT)  # type: ignore[arg-type]
        report_b = out.get(timeout=120)
    finally:
        for p in (a, b):
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGCONT)
            p.join(timeout=60)
    run_hash = run_row().run_hash
    with store.session() as s:
        errors = list(s.scalars(select(RunError.error_code).where(RunError.run_hash == run_hash)))
    assert report_a["pid"] == a.pid and report_b["pid"] == b.pid
    # while B owned the run, A (recovered, stale) wrote nothing and did not move it: the rows are B's alone,
    # unchanged until B completed
    assert snapshot == ("running", str(b.pid)), snapshot
    assert report_b["error"] is None and report_b["status"] == "completed" and not report_b["reused"], report_b
    final = _fingerprint(store, run_hash)
    assert frozen_b["counts"]["equity"] == N_BARS and frozen_b["counts"]["trades"] == final["counts"]["trades"] > 0
    assert (final["trades_sha256"], final["equity_sha256"]) == (frozen_b["trades_sha256"], frozen_b["equity_sha256"])
    # A, on waking, is stopped by the ownership fence: RunAbandoned, nothing executed or completed by it
    assert (report_a["error_type"], report_a["error_code"]) == ("RunAbandoned", "RUN_ABANDONED"), report_a
    assert errors == ["RUN_ABANDONED"]
    assert _fingerprint(store, run_hash)["counts"]["equity"] == N_BARS and run_row().status == "completed"


def _with_app_name(url: str, name: str) -> str:
    """The URL with a PostgreSQL application_name, so the test can find that process's sessions."""
    return make_url(url).update_query_dict({"application_name": name}).render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # table/row locks make the window exact
def test_a_worker_recovered_inside_persist_does_not_break_the_new_attempt(
    store: Store, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between a phase's ownership check and its writes, made exact with a lock.

    The test holds ``LOCK TABLE equity IN SHARE MODE``: A commits its trades and blocks in its equity COPY.
    A is frozen (SIGSTOP) there until its heartbeat is stale, the lock is released and B starts: B recovers the
    run (RUN_ABANDONED), claims it and executes it. If B gets as far as its validation phase it is frozen there,
    A thaws and runs to its end, then B thaws. (With fenced writes — ownership checked in the transaction of
    each write, holding the run row — B instead waits for A's transaction to end; then A thaws.)

    A lost the run: its rows must not land in B's attempt, and B must complete normally.
    """
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", "1")
    raw = _raw(FASTS[1])
    raw["validation"]["permutation"]["n"] = 3000  # B's validation: a few seconds to freeze it in
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    admin = create_engine(db_url, poolclass=NullPool)

    def scalar(sql: str, **params: Any) -> int:
        with admin.connect() as conn:
            return int(conn.execute(text(sql), params).scalar() or 0)

    def waiting_on_lock(app: str, like: str = "%") -> bool:
        return scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                      "AND wait_event_type = 'Lock' AND query ILIKE :like", app=app, like=like) > 0

    def b_in_validation() -> bool:
        return scalar("SELECT count(*) FROM phase_metrics WHERE phase = 'validation'") == 2 and \
            scalar("SELECT count(*) FROM runs WHERE status = 'running' AND worker LIKE :w", w=f"%:{b.pid}") == 1

    cache = str(tmp_path / "cache")
    a = ctx.Process(target=_run_one, args=(_with_app_name(db_url, "af_test_A"), cache, raw, out))
    b = ctx.Process(target=_run_one, args=(_with_app_name(db_url, "af_test_B"), cache, raw, out))
    locker = admin.connect()
    b_frozen = False
    try:
        locker.execute(text("LOCK TABLE equity IN SHARE MODE"))  # autobegin: held until commit
        a.start()
        _wait_until(lambda: scalar("SELECT count(*) FROM trades") > 0 and waiting_on_lock("af_test_A", "%equity%"),
                    "A blocked writing its equity rows", timeout_s=120)
        os.kill(a.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        time.sleep(1.5)  # A's heartbeat is stale
        locker.commit()
        b.start()
        _wait_until(lambda: b_in_validation() or waiting_on_lock("af_test_B"), "B in validation, or blocked by A",
                    timeout_s=120)
        if b_in_validation():
            os.kill(b.pid, signal.SIGSTOP)  # type: ignore[arg-type]
            b_frozen = True
        os.kill(a.pid, signal.SIGCONT)  # type: ignore[arg-type]
        first = out.get(timeout=120)
        if b_frozen:
            assert first["pid"] == a.pid
            os.kill(b.pid, signal.SIGCONT)  # type: ignore[arg-type]
        reports = {r["pid"]: r for r in (first, out.get(timeout=120))}
    finally:
        locker.close()
        for p in (a, b):
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGCONT)
            p.join(timeout=60)
        admin.dispose()
    report_a, report_b = reports[a.pid], reports[b.pid]
    with store.session() as s:
        run = s.execute(select(Run)).scalar_one()
        run_hash, status = run.run_hash, run.status
        errors = list(s.scalars(select(RunError.error_code).where(RunError.run_hash == run_hash)))
    assert report_b["error"] is None and report_b["status"] == "completed" and not report_b["reused"], report_b
    assert (report_a["error_type"], report_a["error_code"]) == ("RunAbandoned", "RUN_ABANDONED"), report_a
    assert status == "completed" and errors == ["RUN_ABANDONED"], (status, errors)
    reference = Store(f"sqlite:///{tmp_path / 'ref.db'}")
    expected = _fingerprint(reference, Pipeline(reference, cache_dir=tmp_path / "ref_cache")
                            .run(load_config(raw), _dataset()).run.run_hash)
    got = _fingerprint(store, run_hash)
    del got["counts"]["run_errors"], expected["counts"]["run_errors"]  # ours has A's RUN_ABANDONED (asserted above)
    assert got["counts"] == expected["counts"] and got["equity_sha256"] == expected["equity_sha256"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_run_failing_while_others_wait_is_executed_once_and_its_failure_reported_to_all(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """Two processes submit the same run at once; the run fails deterministically (300 walk-forward folds need
    602 bars) after a few seconds of validation. The one that waited must report the failure, not run it again
    (a later, separate resubmission is the retry)."""
    raw = _raw(FASTS[2])
    raw["validation"]["permutation"]["n"] = 1500  # seconds of validation before the walk-forward refusal
    raw["validation"]["walk_forward"]["folds"] = 300
    reports = _spawn_all(db_url, tmp_path / "cache", [raw, raw])
    # the executor raises the refusal itself, the waiter re-raises the stored failure as the same class
    assert [(r["error_type"], r["error_code"]) for r in reports] == [("DataInvalid", "DATA_INVALID")] * 2, reports
    assert all("walk-forward with 300 folds needs" in r["error"] for r in reports), reports
    assert sum("failed in another worker: [DATA_INVALID]" in r["error"] for r in reports) == 1, reports
    assert _phase_counts(store, "validation") == {_only_run(store): 1}  # one execution
    with store.session() as s:
        assert s.execute(select(RunError.error_code, RunError.phase)).all() == [("DATA_INVALID", "validation")]


def _only_run(store: Store) -> str:
    with store.session() as s:
        return str(s.execute(select(Run.run_hash)).scalar_one())
