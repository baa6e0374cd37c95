"""Liveness and crash recovery: heartbeats, stale runs, and a real kill -9 of a worker mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.pool import NullPool

from alphaforge.db.clock import read_db_now_ms
from alphaforge.db.models import Equity, Metric, Run, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.errors import ConfigInvalid
from alphaforge.runs.liveness import (
    DEFAULT_STALE_AFTER_S,
    HEARTBEAT_INTERVAL_S,
    Heartbeat,
    heartbeat_interval_s,
    stale_after_s,
    worker_id,
)
from alphaforge.runs.pipeline import Pipeline
from alphaforge.runs.service import RunService

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline import N_BARS, small_config  # noqa: E402
from test_service import Clock, a_new_run  # noqa: E402

RESULTS = (Trade, Equity, Validation, Metric)


def _results(store: Store, run_hash: str) -> list[int]:
    with store.session() as s:
        return [int(s.scalar(select(func.count()).select_from(m).where(m.run_hash == run_hash)) or 0)  # type: ignore[attr-defined]
                for m in RESULTS]


def _db_now(store: Store) -> int:
    with store.session() as s:
        return read_db_now_ms(s)


def test_claim_stamps_worker_and_heartbeat_by_the_database_clock_and_beat_refreshes_it(store: Store) -> None:
    service = RunService(store, clock=Clock(10_000))  # the worker's clock is far off: heartbeats ignore it
    run_hash = service.create(a_new_run()).run.run_hash
    before = _db_now(store)
    assert service.claim(run_hash)
    run = service.get(run_hash)
    assert run.worker == worker_id() and run.created_at == 10_000  # created_at: the service's clock
    assert run.heartbeat_at is not None and before <= run.heartbeat_at <= _db_now(store)
    time.sleep(0.01)
    assert service.beat(run_hash)
    beaten = service.get(run_hash).heartbeat_at
    assert beaten is not None and run.heartbeat_at < beaten <= _db_now(store)
    service.transition(run_hash, "failed")
    assert not service.beat(run_hash)  # not running any more: not ours to beat


def test_the_database_clock_is_epoch_ms(store: Store) -> None:
    assert abs(_db_now(store) - time.time_ns() // 1_000_000) < 5_000  # the test database runs on this machine


def test_heartbeat_thread_beats_while_the_block_runs(store: Store) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    service.claim(run_hash)
    with Heartbeat(service.beat, run_hash, interval_s=0.05) as hb:
        time.sleep(0.4)
    assert hb.beats >= 3


@pytest.mark.parametrize(("env", "stale", "interval"), [
    (None, DEFAULT_STALE_AFTER_S, HEARTBEAT_INTERVAL_S),  # the defaults: a beat every 5 s, stale after 60 s
    ("", DEFAULT_STALE_AFTER_S, HEARTBEAT_INTERVAL_S),
    ("120", 120.0, HEARTBEAT_INTERVAL_S),
    ("8", 8.0, 2.0),  # a short timeout: a quarter of it, so a live worker beats 4 times per timeout
    ("0.4", 0.4, 0.1),
])
def test_stale_after_and_the_heartbeat_interval_follow_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str | None, stale: float, interval: float
) -> None:
    if env is None:
        monkeypatch.delenv("ALPHAFORGE_STALE_AFTER_S", raising=False)
    else:
        monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", env)
    assert (stale_after_s(), heartbeat_interval_s()) == (stale, interval)
    assert Heartbeat(lambda run_hash: True, "0" * 64).interval_s == interval


@pytest.mark.parametrize("bad", ["soon", "0", "-3", "nan", "inf"])
def test_a_bad_stale_after_is_refused_before_a_pipeline_writes_anything(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", bad)
    with pytest.raises(ConfigInvalid, match="ALPHAFORGE_STALE_AFTER_S") as info:
        Pipeline(store, cache_dir=tmp_path / "cache")
    assert info.value.context["field"] == "ALPHAFORGE_STALE_AFTER_S"
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0


def _age_heartbeat(store: Store, run_hash: str, ms: int) -> None:
    """Make the run's heartbeat ``ms`` older, by the database's clock (as if its worker fell silent then)."""
    with store.session() as s:
        s.execute(update(Run).where(Run.run_hash == run_hash).values(heartbeat_at=Run.heartbeat_at - ms))


def test_recover_fails_only_stale_runs_and_removes_partial_rows(store: Store) -> None:
    service = RunService(store, clock=Clock(1_000_000))
    stale, live, pending = (service.create(a_new_run(s)).run.run_hash for s in ("STALE", "LIVE", "WAIT"))
    service.claim(stale)
    service.claim(live)
    store.write_metrics(stale, {"partial": 1}, phase="backtest")
    _age_heartbeat(store, stale, 90_000)
    service.beat(live)
    assert service.is_stale(service.get(stale), 60) and not service.is_stale(service.get(live), 60)
    assert service.recover(stale_after=60) == [stale]
    assert [service.get(h).status for h in (stale, live, pending)] == ["failed", "running", "pending"]
    assert not service.is_stale(service.get(live), 60) and not service.is_stale(service.get(stale), 60)
    assert _results(store, stale) == [0, 0, 0, 0]
    with store.session() as s:
        err = s.execute(select(RunError).where(RunError.run_hash == stale)).scalar_one()
    assert err.error_code == "RUN_ABANDONED" and worker_id() in err.message
    assert "s ago by the database clock" in err.message and "stale after 60 s" in err.message
    silence = float(err.message.split("last sign of life ")[1].split(" s ago")[0])
    assert 90 <= silence < 120, err.message
    assert service.recover(stale_after=60) == []  # idempotent


SKEWS_MS = [10 * 60_000, -10 * 60_000]  # 10 minutes ahead / behind: far beyond the staleness timeout


def _skewed(store: Store, skew_ms: int) -> RunService:
    return RunService(store, clock=lambda: time.time_ns() // 1_000_000 + skew_ms)


@pytest.mark.parametrize("skew_ms", SKEWS_MS)
def test_a_worker_with_a_skewed_clock_is_not_declared_dead_and_declares_no_one_dead(
    store: Store, monkeypatch: pytest.MonkeyPatch, skew_ms: int
) -> None:
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", "60")
    skewed, honest = _skewed(store, skew_ms), RunService(store)
    mine, theirs = (s.create(a_new_run(n)).run.run_hash for s, n in ((skewed, "MINE"), (honest, "THEIRS")))
    assert skewed.claim(mine) and honest.claim(theirs)
    for _ in range(3):  # both keep beating; each one's recover() runs between the beats
        assert skewed.beat(mine) and honest.beat(theirs)
        assert honest.recover() == [] and skewed.recover() == []
        for judge in (skewed, honest):
            assert not judge.is_stale(judge.get(mine)) and not judge.is_stale(judge.get(theirs))
        time.sleep(0.05)
    assert [honest.get(h).status for h in (mine, theirs)] == ["running", "running"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(RunError)) == 0


@pytest.mark.parametrize("skew_ms", SKEWS_MS)
def test_a_run_silent_for_longer_than_the_timeout_is_recovered_whatever_the_recoverer_clock(
    store: Store, skew_ms: int
) -> None:
    skewed, honest = _skewed(store, skew_ms), RunService(store)
    mine, theirs = (s.create(a_new_run(n)).run.run_hash for s, n in ((skewed, "MINE"), (honest, "THEIRS")))
    assert skewed.claim(mine) and honest.claim(theirs)
    time.sleep(0.4)  # really silent, by the database's clock, for longer than the 0.2 s timeout below
    assert skewed.is_stale(skewed.get(theirs), 0.2) and honest.is_stale(honest.get(mine), 0.2)
    assert skewed.recover(stale_after=0.2) == sorted([mine, theirs])
    assert [honest.get(h).status for h in (mine, theirs)] == ["failed", "failed"]


def test_resubmitting_a_stale_run_recovers_it_and_completes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphaforge.data import dataset_from_frame
    from alphaforge.data.synthetic import synthetic_ohlcv

    dataset = dataset_from_frame(synthetic_ohlcv(N_BARS, seed=3))
    pipeline = Pipeline(store, cache_dir=tmp_path / "cache")
    run_hash = pipeline.service.submit(small_config(), dataset).run.run_hash
    pipeline.service.claim(run_hash)  # a worker took it ... and vanished
    with store.engine.begin() as conn:
        conn.execute(Run.__table__.update().values(heartbeat_at=0))
    monkeypatch.setenv("ALPHAFORGE_STALE_AFTER_S", "30")
    outcome = pipeline.run(small_config(), dataset)
    assert outcome.run.status == "completed" and not outcome.reused
    with store.session() as s:
        assert s.execute(select(RunError.error_code)).scalars().all() == ["RUN_ABANDONED"]


CHILD = r"""
import pathlib, sys, time
sys.path.insert(0, {tests!r})
from test_pipeline import small_config
from alphaforge.data import dataset_from_frame
from alphaforge.db.clock import read_db_now_ms
from alphaforge.db.models import Equity
from alphaforge.db.store import Store
from alphaforge.data.synthetic import synthetic_ohlcv
import alphaforge.runs.pipeline as pipeline
url, cache, point, flag = sys.argv[1:5]
store = Store(url)

def hang(*args, **kwargs):
    pathlib.Path(flag).write_text("reached")
    time.sleep(600)

if point == "validation":
    pipeline.run_validation = hang
elif point == "persist":
    original = store.insert_equity
    def half(run_hash, frame, **kwargs):
        original(run_hash, frame.iloc[: len(frame) // 2], **kwargs)  # committed: a partial result
        hang()
    store.insert_equity = half
elif point == "bulk_transaction":
    def inside(run_hash, frame, **kwargs):
        with store.session() as s:  # an open, uncommitted write transaction when the kill lands
            rows = [dict(run_hash=run_hash, ts=int(t), equity=1.0, drawdown=0.0, realized_pnl=0.0,
                         unrealized_pnl=0.0, cost_drag=0.0) for t in frame["ts"][:100]]
            s.execute(Equity.__table__.insert(), rows)
            s.flush()
            hang()
    store.insert_equity = inside
dataset = dataset_from_frame(synthetic_ohlcv({n_bars}, seed=3))
pipeline.Pipeline(store, cache_dir=cache).run(small_config(), dataset)
"""


@pytest.mark.parametrize("point", ["bulk_transaction", "persist", "validation"])
def test_kill_9_mid_run_then_recover_and_resubmit(store: Store, db_url: str, tmp_path: Path, point: str) -> None:
    flag = tmp_path / "reached"
    script = CHILD.format(tests=str(Path(__file__).parent), n_bars=N_BARS)
    child = subprocess.Popen([sys.executable, "-c", script, db_url, str(tmp_path / "cache"), point, str(flag)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "child never reached the kill point"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    if store.dialect == "sqlite":
        engine = create_engine(db_url, poolclass=NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        engine.dispose()
    service = RunService(store)
    with store.session() as s:
        run = s.execute(select(Run)).scalar_one()
        run_hash, status = run.run_hash, run.status
    assert status == "running"  # never visible as completed with missing rows
    assert service.recover(stale_after=0) == [run_hash]
    assert service.get(run_hash).status == "failed" and _results(store, run_hash) == [0, 0, 0, 0]
    assert _error_codes(store, run_hash) == ["RUN_ABANDONED"]  # failed as abandoned, not by anything else
    outcome = Pipeline(store, cache_dir=tmp_path / "cache").run(small_config(), _dataset())
    assert outcome.run.status == "completed" and _results(store, run_hash)[1] == N_BARS
    assert _error_codes(store, run_hash) == ["RUN_ABANDONED"]  # the retry added no error of its own


def _error_codes(store: Store, run_hash: str) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(RunError.error_code).where(RunError.run_hash == run_hash).order_by(RunError.ts)))


def _dataset():  # type: ignore[no-untyped-def]
    from alphaforge.data import dataset_from_frame
    from alphaforge.data.synthetic import synthetic_ohlcv

    return dataset_from_frame(synthetic_ohlcv(N_BARS, seed=3))
