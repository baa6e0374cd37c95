"""The unit of work on real databases: lifecycle, phases, error capture, finalize, claims."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import traceback

import numpy as np
import pandas as pd
import pytest
from _run_helpers import colliding_configs, shared_prefix
from conftest import race_in_processes
from sqlalchemy import func, select

from alphaforge.config import RunConfig, load_config
from alphaforge.data import Dataset, dataset_from_frame
from alphaforge.db.models import Equity, Metric, PhaseMetric, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.errors import DataInvalid, IllegalTransition, IntegrityMismatch, RunAmbiguous, RunNotFound
from alphaforge.hashing import sha256_hex
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import MESSAGE_MAX_CHARS, TRANSITIONS, NewRun, RunService

STATUSES = ("pending", "running", "completed", "failed")


def small_dataset(n: int = 50, seed: int = 1) -> Dataset:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="D"),
        "open": open_, "high": np.maximum(open_, close) * 1.01, "low": np.minimum(open_, close) * 0.99,
        "close": close, "volume": rng.integers(1, 1000, n),
    })
    return dataset_from_frame(frame)


def a_new_run(symbol: str = "TEST") -> NewRun:
    config = load_config({"symbol": symbol, "strategy": {"name": "buy_and_hold"}})
    return new_run(config, small_dataset())


class Clock:
    """A clock that does not move unless told: shows that updated_at still increases."""

    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_create_is_pending_and_idempotent(store: Store) -> None:
    service = RunService(store)
    new = a_new_run()
    first = service.create(new)
    second = service.create(new)
    assert first.created and not second.created and not second.reused
    assert first.run.status == "pending" and second.run == first.run
    assert first.run.data_hash == new.data_hash and first.run.db_version >= 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run_table())) == 1


def Run_table():  # noqa: N802 - tiny helper for readability
    from alphaforge.db.models import Run

    return Run


def _drive_to(service: RunService, run_hash: str, status: str) -> None:
    path = {"pending": [], "running": ["running"], "completed": ["running", "completed"],
            "failed": ["running", "failed"]}[status]
    for step in path:
        service.transition(run_hash, step)


@pytest.mark.parametrize(("start", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_every_transition_is_allowed_or_illegal(store: Store, start: str, target: str) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    _drive_to(service, run_hash, start)
    if target in TRANSITIONS[start]:
        assert service.transition(run_hash, target).status == target
    else:
        with pytest.raises(IllegalTransition, match=f"from {start} to {target}"):
            service.transition(run_hash, target)
        assert service.get(run_hash).status == start


def test_updated_at_changes_on_every_transition_even_with_a_frozen_clock(store: Store) -> None:
    service = RunService(store, clock=Clock())
    run_hash = service.create(a_new_run()).run.run_hash
    seen = [service.get(run_hash).updated_at]
    for step in ("running", "failed", "pending", "running", "completed"):
        seen.append(service.transition(run_hash, step).updated_at)
    assert seen == sorted(set(seen)) and len(seen) == 6


def test_claim_then_retry_after_failure(store: Store) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    assert service.claim(run_hash) is True
    assert service.claim(run_hash) is False  # already running
    service.transition(run_hash, "failed")
    assert service.claim(run_hash) is True  # failed → pending → running
    assert service.get(run_hash).status == "running"


def test_phase_records_timing_and_rows(store: Store) -> None:
    clock = Clock(5_000)
    service = RunService(store, clock=clock)
    run_hash = service.create(a_new_run()).run.run_hash
    with service.phase(run_hash, "features", rows_processed=10) as ph:
        clock.now = 5_250
        ph.rows_processed = 42
        ph.extra["cache"] = "hit"
    with pytest.raises(DataInvalid):
        with service.phase(run_hash, "backtest"):
            clock.now = 5_300
            raise DataInvalid("boom")
    with store.session() as s:
        rows = s.execute(select(PhaseMetric).order_by(PhaseMetric.id)).scalars().all()
        got = [(r.phase, r.started_at, r.ended_at, r.duration_ms, r.rows_processed, r.extra_json) for r in rows]
    assert got == [
        ("features", 5_000, 5_250, 250, 42, '{"cache":"hit"}'),
        ("backtest", 5_250, 5_300, 50, None, '{"error_code":"DATA_INVALID"}'),
    ]


def _add_results(store: Store, run_hash: str) -> None:
    store.insert_equity(run_hash, pd.DataFrame({"ts": [1, 2], "equity": [1.0, 2.0], "drawdown": [0.0, 0.0],
                                                "realized_pnl": [0.0, 0.0], "unrealized_pnl": [0.0, 1.0],
                                                "cost_drag": [0.0, 0.0]}))
    store.insert_trades(run_hash, pd.DataFrame({"ts": [1], "side": ["buy"], "qty": [1.0], "entry_price": [1.0],
                                                "exit_price": [np.nan], "cost_bps": [1.5], "borrow_cost": [0.0],
                                                "pnl": [0.0], "position_after": [1.0]}))
    store.write_metrics(run_hash, {"sharpe": 1.5}, phase="backtest")
    store.write_validation(run_hash, {"payload_json": "{}", "bootstrap_method": "simple", "bootstrap_fallback": 1})


def _count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_fail_records_error_and_removes_partial_results(store: Store) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    service.claim(run_hash)
    with service.phase(run_hash, "persist"):
        _add_results(store, run_hash)
    assert [_count(store, m) for m in (Trade, Equity, Metric, Validation)] == [1, 2, 1, 1]
    try:
        raise DataInvalid("x" * (MESSAGE_MAX_CHARS + 500))
    except DataInvalid as exc:
        error = exc
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    run = service.fail(run_hash, error, phase="persist")
    assert run.status == "failed"
    assert [_count(store, m) for m in (Trade, Equity, Metric, Validation)] == [0, 0, 0, 0]
    assert _count(store, PhaseMetric) == 1
    with store.session() as s:
        err = s.execute(select(RunError)).scalar_one()
        assert (err.error_code, err.phase) == ("DATA_INVALID", "persist")
        assert len(err.message) == MESSAGE_MAX_CHARS
        assert err.stack_hash == sha256_hex(stack)


def test_an_internal_error_gets_the_internal_code(store: Store) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    service.claim(run_hash)
    service.fail(run_hash, ZeroDivisionError("division by zero"))
    with store.session() as s:
        assert s.execute(select(RunError.error_code)).scalar_one() == "INTERNAL"


def test_complete_checks_dataset_hash_and_equity_rows(store: Store) -> None:
    service = RunService(store)
    new = a_new_run()
    run_hash = service.create(new).run.run_hash
    service.claim(run_hash)
    with pytest.raises(IntegrityMismatch, match="data_hash"):
        service.complete(run_hash, data_hash="0" * 64)
    _add_results(store, run_hash)
    with pytest.raises(IntegrityMismatch, match="2 equity rows stored, 50 bars expected"):
        service.complete(run_hash, data_hash=new.data_hash, expected_equity_rows=50)
    run = service.complete(run_hash, data_hash=new.data_hash, manifest={"x": 1}, expected_equity_rows=2)
    assert run.status == "completed" and run.manifest == {"x": 1}


def test_submit_reports_reuse_of_a_completed_run(store: Store) -> None:
    service = RunService(store)
    config = load_config({"symbol": "R", "strategy": {"name": "buy_and_hold"}})
    dataset = small_dataset()
    first = service.submit(config, dataset)
    assert first.created and not first.reused
    run_hash = first.run.run_hash
    service.claim(run_hash)
    service.complete(run_hash, data_hash=dataset.data_hash)
    again = service.submit(config, dataset)
    assert again.reused and again.run.run_hash == run_hash and again.run.status == "completed"


def test_resolve_prefix(store: Store) -> None:
    service = RunService(store)
    hashes = [service.create(a_new_run(symbol)).run.run_hash for symbol in ("A", "B", "C", "D", "E", "F")]
    target = hashes[0]
    assert service.resolve(target[:20].upper()) == target
    with pytest.raises(RunNotFound):
        service.resolve("zz")
    with pytest.raises(RunNotFound):
        service.resolve("")


def test_resolve_a_prefix_shared_by_two_runs_is_ambiguous(store: Store) -> None:
    """Two runs whose run_hash values share (at least) 4 leading hex characters, chosen by construction: the
    shared prefix is refused as RUN_AMBIGUOUS, one character more finds each run."""
    service = RunService(store)
    dataset = small_dataset()

    def config(symbol: str) -> RunConfig:
        return load_config({"symbol": symbol, "strategy": {"name": "buy_and_hold"}})

    pair = colliding_configs(config, dataset.data_hash, shared=4)
    first, second = (service.create(new_run(c, dataset)).run.run_hash for c in pair)
    service.create(a_new_run("ELSEWHERE"))  # a third run that does not share the prefix
    common = shared_prefix(first, second)
    assert len(common) >= 4 and first != second
    for prefix in (common[:4], common, common.upper()):
        with pytest.raises(RunAmbiguous) as refused:
            service.resolve(prefix)
        assert refused.value.error_code == "RUN_AMBIGUOUS" and refused.value.exit_code == 2
        assert prefix.lower() in str(refused.value)
    for run_hash in (first, second):
        assert service.resolve(run_hash[: len(common) + 1]) == run_hash
        assert service.resolve(run_hash) == run_hash


def _claim_in_process(url: str, run_hash: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[name-defined]
    try:
        service = RunService(Store(url))
        barrier.wait(timeout=30)
        out.put(service.claim(run_hash))
    except Exception as exc:  # noqa: BLE001
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_claims_exactly_one_wins(store: Store, db_url: str) -> None:
    service = RunService(store)
    run_hash = service.create(a_new_run()).run.run_hash
    n = 4
    results = race_in_processes(_claim_in_process, [(db_url, run_hash)] * n)
    assert sorted(map(str, results)) == ["False"] * (n - 1) + ["True"], results
    assert service.get(run_hash).status == "running"
