"""Bulk trade/equity paths, on real databases (SQLite file and PostgreSQL via the ``store`` fixture).

Every behaviour is checked on the native path of each backend (SQLite: ADBC in the helper process,
PostgreSQL: ADBC in process) and, where the rules are path-independent, on the SQLAlchemy Core fallback too.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import only_on
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from test_service import a_new_run

from alphaforge.db import adbc, bulk, bulk_postgres, bulk_sqlite
from alphaforge.db.bulk import (
    EQUITY_COLUMNS,
    SMALL_FRAME_ROWS,
    TRADE_COLUMNS,
    CoreBulk,
    PostgresAdbcBulk,
    SqliteAdbcBulk,
    normalize_rows,
)
from alphaforge.db.models import Equity, Run, Trade
from alphaforge.db.store import Store
from alphaforge.errors import DatabaseUnavailable, DataInvalid, RunAbandoned, RunNotFound
from alphaforge.runs import service as service_module
from alphaforge.runs.liveness import worker_id
from alphaforge.runs.service import RunService

VALUES = EQUITY_COLUMNS[1:]
TRADE_VALUES = TRADE_COLUMNS[2:]
T0 = 1_700_000_000_000_000_000
BAR = 60_000_000_000


class CoreStore(Store):
    """The same database through the SQLAlchemy Core fallback path."""

    def bulk_backend(self) -> CoreBulk:  # type: ignore[override]
        return CoreBulk(self.engine)


@pytest.fixture(params=["native", "core"])
def bstore(request: pytest.FixtureRequest, store: Store) -> Store:
    return store if request.param == "native" else CoreStore(store.url)


_counter = iter(range(1, 10**9))


def new_run(store: Store) -> str:
    run_hash = f"{os.getpid():016x}{next(_counter):048x}"  # unique across forked children too
    with store.session() as s:
        s.add(Run(
            run_hash=run_hash, created_at=1, updated_at=1, status="running", config_json="{}",
            manifest_json="{}", data_hash="ab" * 32, seed_root=1, db_version=1, bootstrap_seed=1,
        ))
    return run_hash


def equity_frame(n: int, seed: int = 0, start: int = T0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"ts": start + np.arange(n, dtype=np.int64) * BAR})
    for c in VALUES:
        frame[c] = rng.standard_normal(n).astype(np.float32)
    frame["drawdown"] = np.abs(frame["drawdown"])
    return frame


def trades_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": T0 + np.sort(rng.integers(0, max(n // 2, 1), n)) * BAR,
        "side": rng.choice(["buy", "sell", "flat"], n),
    })
    for c in TRADE_VALUES:
        frame[c] = rng.standard_normal(n).astype(np.float32)
    frame["cost_bps"] = np.abs(frame["cost_bps"])
    frame.loc[frame.index % 3 == 0, "exit_price"] = np.nan
    frame.loc[frame.index % 5 == 0, "entry_price"] = np.nan
    return frame


def count(store: Store, model: Any, run_hash: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model).where(model.run_hash == run_hash)) or 0)


def bits(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0 and len(got) == len(want)
    for c in got.columns:
        if c == "ts":
            assert got[c].dtype == np.int64
            np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy())
        elif c == "side":
            assert all(type(v) is str for v in got[c]) and pd.api.types.is_string_dtype(got[c])
            assert got[c].tolist() == [str(v) for v in want[c]]
        else:
            assert got[c].dtype == np.float32, c
            np.testing.assert_array_equal(bits(got[c]), bits(want[c]), err_msg=c)


# -- the path each backend takes -----------------------------------------------------------------------


def test_each_backend_takes_its_fast_path(store: Store) -> None:
    expected = SqliteAdbcBulk if store.dialect == "sqlite" else PostgresAdbcBulk
    assert isinstance(store.bulk_backend(), expected)
    assert isinstance(Store("sqlite://").bulk_backend(), CoreBulk)  # in memory: only SQLAlchemy sees it


def test_sqlite_adbc_never_runs_in_the_callers_process(tmp_path: Path) -> None:
    # ADBC's private SQLite copy in the process that also holds sqlite3 connections to the same file would
    # let closing one copy's file descriptor drop the other copy's POSIX locks. The Store's process must
    # therefore never load it: ingest and read go through the helper process.
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, pandas as pd
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from alphaforge.db.store import Store
        from alphaforge.db.models import Run
        from alphaforge.db import bulk_sqlite
        store = Store("sqlite:///{tmp_path / 'x.db'}")
        with store.session() as s:
            s.add(Run(run_hash="ab" * 32, created_at=1, updated_at=1, status="running", config_json="{{}}",
                      manifest_json="{{}}", data_hash="ab" * 32, seed_root=1, db_version=1, bootstrap_seed=1))
        frame = pd.DataFrame({{"ts": np.arange(5), **{{c: np.ones(5, np.float32) for c in
                              ("equity", "drawdown", "realized_pnl", "unrealized_pnl", "cost_drag")}}}})
        assert store.insert_equity("ab" * 32, frame) == 5 and len(store.read_equity("ab" * 32)) == 5
        reply, _ = bulk_sqlite.call({{"op": "ping"}})
        import os
        assert reply["pid"] != os.getpid()
        print("adbc_driver_sqlite" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- round trips ---------------------------------------------------------------------------------------


def test_equity_round_trip_is_sorted_typed_and_exact(bstore: Store) -> None:
    run_hash = new_run(bstore)
    frame = equity_frame(5000, seed=1)
    shuffled = frame.sample(frac=1.0, random_state=3)  # non-RangeIndex, out of order
    assert bstore.insert_equity(run_hash, shuffled) == 5000
    assert_same_frame(bstore.read_equity(run_hash), frame)


def test_trades_round_trip_nulls_and_seq(bstore: Store) -> None:
    run_hash = new_run(bstore)
    frame = trades_frame(3000, seed=2)
    assert bstore.insert_trades(run_hash, frame) == 3000
    got = bstore.read_trades(run_hash)
    assert_same_frame(got, frame)
    assert got["entry_price"].isna().sum() == frame["entry_price"].isna().sum() > 0
    with bstore.engine.connect() as conn:  # NaN is stored as NULL, and seq is 0..n-1
        nulls = conn.scalar(select(func.count()).select_from(Trade).where(
            Trade.run_hash == run_hash, Trade.exit_price.is_(None)))
        seqs = conn.execute(select(Trade.seq).where(Trade.run_hash == run_hash).order_by(Trade.seq)).scalars().all()
    assert nulls == frame["exit_price"].isna().sum()
    assert seqs == list(range(3000))


def test_trades_keep_input_order_within_a_bar(bstore: Store) -> None:
    run_hash = new_run(bstore)
    frame = trades_frame(6, seed=3)
    frame["ts"] = [T0 + 2 * BAR, T0, T0 + 2 * BAR, T0, T0 + BAR, T0]
    frame["qty"] = np.arange(6, dtype=np.float32)  # identifies each fill
    bstore.insert_trades(run_hash, frame)
    got = bstore.read_trades(run_hash)
    assert got["qty"].tolist() == [1.0, 3.0, 5.0, 4.0, 0.0, 2.0]  # stable: fills of one bar in input order
    assert got["ts"].tolist() == sorted(frame["ts"])


def test_a_column_that_is_null_throughout_a_long_prefix_reads_back(store: Store) -> None:
    # The SQLite reader infers column types from its first batch: an all-NULL prefix must not type it int64.
    run_hash = new_run(store)
    frame = trades_frame(3000, seed=4)
    frame["entry_price"] = np.nan
    frame.loc[2999, "entry_price"] = 1.5
    store.insert_trades(run_hash, frame)
    got = store.read_trades(run_hash)
    assert got["entry_price"].dtype == np.float32
    assert got["entry_price"].isna().sum() == 2999 and got["entry_price"].iloc[2999] == 1.5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_float32_values_round_trip_bit_for_bit(store: Store, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40))
    finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
    values = {c: data.draw(hnp.arrays(np.float32, n, elements=finite)) for c in VALUES}
    values["drawdown"] = np.abs(values["drawdown"])
    ts = np.sort(data.draw(hnp.arrays(np.int64, n, elements=st.integers(-(2**62), 2**62), unique=True)))
    frame = pd.DataFrame({"ts": ts, **values})
    run_hash = new_run(store)
    store.insert_equity(run_hash, frame)
    got = store.read_equity(run_hash)
    np.testing.assert_array_equal(got["ts"].to_numpy(), ts)
    for c in VALUES:
        want = values[c] + np.float32(0.0)  # the one documented change: -0.0 is stored as 0.0
        np.testing.assert_array_equal(bits(got[c]), bits(want), err_msg=c)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_trade_values_and_nulls_round_trip_bit_for_bit(store: Store, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 30))
    finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
    maybe_null = st.one_of(finite, st.just(float("nan")))
    frame = pd.DataFrame({
        "ts": np.sort(data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 50)))),
        "side": data.draw(st.lists(st.sampled_from(["buy", "sell", "flat"]), min_size=n, max_size=n)),
    })
    for c in TRADE_VALUES:
        nullable = c in ("entry_price", "exit_price")
        frame[c] = data.draw(hnp.arrays(np.float32, n, elements=maybe_null if nullable else finite))
    frame["cost_bps"] = np.abs(frame["cost_bps"])
    run_hash = new_run(store)
    store.insert_trades(run_hash, frame)
    got = store.read_trades(run_hash)
    assert got["side"].tolist() == frame["side"].tolist()
    for c in TRADE_VALUES:
        want = frame[c].to_numpy() + np.float32(0.0)
        assert np.array_equal(np.isnan(got[c].to_numpy()), np.isnan(want)), c
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(bits(got[c].to_numpy()[ok]), bits(want[ok]), err_msg=c)


def test_input_shapes_give_identical_rows(bstore: Store) -> None:
    frame = trades_frame(200, seed=5)
    shapes = {
        "frame": frame,
        "arrow": pa.Table.from_pandas(frame, preserve_index=False),
        "records": frame.to_dict("records"),
    }
    results = {}
    for name, data in shapes.items():
        run_hash = new_run(bstore)
        assert bstore.insert_trades(run_hash, data) == 200
        results[name] = bstore.read_trades(run_hash)
    for name in ("arrow", "records"):
        assert_same_frame(results[name], results["frame"])
    equity = equity_frame(100, seed=6)
    for data in (equity, pa.Table.from_pandas(equity), equity.to_dict("records")):
        run_hash = new_run(bstore)
        bstore.insert_equity(run_hash, data)
        assert_same_frame(bstore.read_equity(run_hash), equity)


def test_empty_inputs_and_empty_reads(bstore: Store) -> None:
    run_hash = new_run(bstore)
    assert bstore.insert_equity(run_hash, []) == 0
    assert bstore.insert_equity(run_hash, equity_frame(0)) == 0
    assert bstore.insert_trades(run_hash, trades_frame(0)) == 0
    assert bstore.insert_trades(run_hash, pd.DataFrame(columns=list(TRADE_COLUMNS))) == 0
    for got, columns in ((bstore.read_equity(run_hash), EQUITY_COLUMNS),
                         (bstore.read_trades(run_hash), TRADE_COLUMNS),
                         (bstore.read_equity("f" * 64), EQUITY_COLUMNS)):
        assert list(got.columns) == list(columns) and len(got) == 0
        assert got["ts"].dtype == np.int64 and all(got[c].dtype == np.float32 for c in columns[-5:])


def test_large_round_trip(store: Store) -> None:
    run_hash = new_run(store)
    frame = equity_frame(200_000, seed=7)
    assert store.insert_equity(run_hash, frame) == 200_000
    assert_same_frame(store.read_equity(run_hash), frame)


# -- validation: errors name column and row; nothing is written -------------------------------------------


def _error(call: Any) -> DataInvalid:
    with pytest.raises(DataInvalid) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("equity", 1e39, "overflows float32"),
        ("drawdown", -np.inf, "non-finite"),
        ("realized_pnl", np.nan, "non-finite"),
        ("cost_drag", "abc", "is not a number"),
    ],
)
def test_bad_values_name_column_and_row(store: Store, column: str, value: Any, needle: str) -> None:
    run_hash = new_run(store)
    frame = equity_frame(10).astype({column: object})
    frame.loc[7, column] = value
    err = _error(lambda: store.insert_equity(run_hash, frame))
    assert needle in str(err) and f"equity.{column}" in str(err) and "row 7" in str(err)
    assert err.context["column"] == column and err.context["row"] == 7
    assert count(store, Equity, run_hash) == 0


def test_float32_overflow_is_exactly_the_values_that_become_inf() -> None:
    biggest = float(np.finfo(np.float32).max)
    ok = pd.DataFrame({"ts": [1, 2], **{c: [biggest, -biggest] for c in VALUES}}).assign(drawdown=1.0)
    assert normalize_rows("equity", ok)["equity"].tolist() == [biggest, -biggest]
    # one float32 ulp above max rounds to inf: an error, naming the row
    above = float(np.nextafter(np.float64(biggest), np.inf)) * (1 + 2**-24)
    bad = ok.copy()
    bad.loc[1, "realized_pnl"] = -above
    err = _error(lambda: normalize_rows("equity", bad))
    assert err.context == {"column": "realized_pnl", "row": 1}


def test_nullable_trade_prices_take_nan_but_not_inf(store: Store) -> None:
    run_hash = new_run(store)
    frame = trades_frame(5)
    frame.loc[:, "entry_price"] = np.nan
    assert store.insert_trades(run_hash, frame) == 5
    bad = trades_frame(5)
    bad.loc[3, "exit_price"] = np.inf
    err = _error(lambda: store.insert_trades(new_run(store), bad))
    assert err.context == {"column": "exit_price", "row": 3}
    bad = trades_frame(5)
    bad.loc[2, "qty"] = np.nan
    assert _error(lambda: store.insert_trades(run_hash, bad)).context == {"column": "qty", "row": 2}


def test_timestamps_must_be_present_integer_ns(store: Store) -> None:
    run_hash = new_run(store)
    frame = equity_frame(4)
    assert "expected int64" in str(_error(lambda: store.insert_equity(run_hash, frame.assign(ts=frame.ts * 1.0))))
    records = frame.to_dict("records")
    del records[2]["ts"]
    assert _error(lambda: store.insert_equity(run_hash, records)).context == {"column": "ts", "row": 2}
    assert store.insert_equity(new_run(store), frame.astype({"ts": "Int64"})) == 4  # nullable ints, no NA
    huge = frame.assign(ts=frame["ts"].astype(np.uint64))
    huge.loc[3, "ts"] = np.uint64(2**63)
    assert _error(lambda: store.insert_equity(run_hash, huge)).context == {"column": "ts", "row": 3}
    assert "missing column(s) cost_drag" in str(_error(lambda: store.insert_equity(run_hash, frame.drop(columns="cost_drag"))))
    bad_side = trades_frame(4).assign(side=["buy", "sell", "hold", "flat"])
    assert _error(lambda: store.insert_trades(run_hash, bad_side)).context == {"column": "side", "row": 2}
    assert count(store, Equity, run_hash) == 0 and count(store, Trade, run_hash) == 0


def test_duplicate_equity_bar_names_both_rows(store: Store) -> None:
    run_hash = new_run(store)
    frame = equity_frame(6)
    frame.loc[4, "ts"] = frame.loc[1, "ts"]
    err = _error(lambda: store.insert_equity(run_hash, frame))
    assert "duplicate timestamp" in str(err) and "rows 1 and 4" in str(err)
    assert count(store, Equity, run_hash) == 0


# -- atomicity: a failing call leaves no row --------------------------------------------------------------


@pytest.mark.parametrize("bad_row", [0, 49, 50, 517, 999])
def test_check_violation_anywhere_leaves_nothing(bstore: Store, bad_row: int) -> None:
    # The first row, rows inside, the last row: the statement fails wherever the bad row is.
    run_hash = new_run(bstore)
    frame = equity_frame(1000)
    frame.loc[bad_row, "drawdown"] = np.float32(-0.5)  # valid float32, violates ck_equity_drawdown_nonneg
    err = _error(lambda: bstore.insert_equity(run_hash, frame))
    assert "ck_equity_drawdown_nonneg" in str(err) and err.context["row"] == bad_row
    assert count(bstore, Equity, run_hash) == 0
    trades = trades_frame(500)
    trades.loc[499, "cost_bps"] = np.float32(-1.0)
    assert _error(lambda: bstore.insert_trades(run_hash, trades)).context["column"] == "cost_bps"
    assert count(bstore, Trade, run_hash) == 0
    bstore.insert_equity(run_hash, equity_frame(1000))  # the connection is healthy afterwards
    assert count(bstore, Equity, run_hash) == 1000


def test_missing_parent_run_leaves_nothing(bstore: Store) -> None:
    orphan = "e" * 64
    with pytest.raises(RunNotFound) as info:
        bstore.insert_equity(orphan, equity_frame(300))
    assert orphan in str(info.value)
    with pytest.raises(RunNotFound):
        bstore.insert_trades(orphan, trades_frame(300))
    assert count(bstore, Equity, orphan) == 0 and count(bstore, Trade, orphan) == 0


def test_collision_with_stored_rows_rolls_back_the_whole_call(bstore: Store) -> None:
    run_hash = new_run(bstore)
    first = equity_frame(10, start=T0 + 1000 * BAR)
    bstore.insert_equity(run_hash, first)
    second = equity_frame(1001, seed=9)  # bars 0..1000: only the last one collides with a stored bar
    err = _error(lambda: bstore.insert_equity(run_hash, second))
    assert "already stored" in str(err)
    assert_same_frame(bstore.read_equity(run_hash), first)
    bstore.insert_trades(run_hash, trades_frame(5))
    with pytest.raises(DataInvalid):
        bstore.insert_trades(run_hash, trades_frame(8))  # seq 0..4 are taken
    assert count(bstore, Trade, run_hash) == 5


def test_fenced_writes_need_the_run_to_be_running_under_the_owner(bstore: Store) -> None:
    run_hash = new_run(bstore)
    with bstore.session() as s:
        s.get(Run, run_hash).worker = "host:1"  # type: ignore[union-attr]
    assert bstore.insert_equity(run_hash, equity_frame(50), owner="host:1") == 50
    with pytest.raises(RunAbandoned):
        bstore.insert_trades(run_hash, trades_frame(40), owner="host:2")  # re-claimed by another worker
    with bstore.session() as s:
        s.get(Run, run_hash).status = "failed"  # type: ignore[union-attr]
    with pytest.raises(RunAbandoned) as info:
        bstore.insert_trades(run_hash, trades_frame(40), owner="host:1")  # recovered as abandoned
    assert "failed" in str(info.value)
    assert count(bstore, Trade, run_hash) == 0 and count(bstore, Equity, run_hash) == 50
    assert bstore.insert_trades(run_hash, trades_frame(40)) == 40  # unfenced writes are not checked
    with pytest.raises(RunNotFound):
        bstore.insert_equity("d" * 64, equity_frame(5), owner="host:1")


def test_the_bulk_fence_and_the_service_fence_agree(bstore: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """One ownership check for every writer: while the worker owns the run both accept; once the run is
    recovered, and again once another worker re-claimed it, both refuse with RunAbandoned."""
    service, me = RunService(bstore), worker_id()
    run_hash = service.create(a_new_run()).run.run_hash
    assert service.claim(run_hash)
    service.ensure_owner(run_hash)
    with bstore.session() as s:
        service.hold_ownership(s, run_hash)
    assert bstore.insert_equity(run_hash, equity_frame(20), owner=me) == 20

    def both_refuse(holder: str) -> None:
        assert not service.beat(run_hash)
        with pytest.raises(RunAbandoned):
            service.ensure_owner(run_hash)
        with pytest.raises(RunAbandoned), bstore.session() as s:
            service.hold_ownership(s, run_hash)
        for insert, frame in ((bstore.insert_trades, trades_frame(10)), (bstore.insert_equity, equity_frame(10))):
            with pytest.raises(RunAbandoned, match=holder):
                insert(run_hash, frame, owner=me)
        assert (count(bstore, Trade, run_hash), count(bstore, Equity, run_hash)) == (0, 0)

    time.sleep(0.01)
    assert service.recover(run_hash, stale_after=0) == [run_hash]  # partial rows removed
    both_refuse("failed")
    with monkeypatch.context() as m:
        m.setattr(service_module, "worker_id", lambda: "elsewhere:1")
        assert service.claim(run_hash)  # re-claimed by another worker
        service.ensure_owner(run_hash)
    both_refuse("elsewhere:1")
    assert bstore.insert_equity(run_hash, equity_frame(20), owner="elsewhere:1") == 20  # the new owner writes


# -- processes: concurrency, fork safety, helper failure ----------------------------------------------------


def _child_writes(url: str, index: int, chunks: int, rows: int) -> None:
    store = Store(url)
    run_hash = new_run(store)  # an ORM write (Python's sqlite3) interleaved with the helper's writes
    for k in range(chunks):
        store.insert_equity(run_hash, equity_frame(rows, seed=index, start=T0 + k * rows * BAR))
    store.insert_trades(run_hash, trades_frame(rows, seed=index))
    with store.session() as s:
        s.get(Run, run_hash).status = "completed"  # type: ignore[union-attr]
    os._exit(0)


@only_on("sqlite")
def test_four_processes_insert_into_one_sqlite_file(db_url: str) -> None:
    store = Store(db_url)
    parent_run = new_run(store)
    store.insert_equity(parent_run, equity_frame(100))  # the parent has a live helper when it forks
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_child_writes, args=(db_url, i, 5, 4000)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with store.engine.connect() as conn:
        runs = conn.execute(select(Run.run_hash, Run.status).where(Run.run_hash != parent_run)).all()
    assert len(runs) == 4 and {status for _, status in runs} == {"completed"}
    for run_hash, _ in runs:
        assert count(store, Equity, run_hash) == 20_000 and count(store, Trade, run_hash) == 4000
        assert store.read_equity(run_hash)["ts"].is_monotonic_increasing
    assert_same_frame(store.read_equity(parent_run), equity_frame(100))  # the parent's helper still works


def _child_reports_helper_pid(conn: Any) -> None:
    reply, _ = bulk_sqlite.call({"op": "ping"})
    conn.send(reply["pid"])
    os._exit(0)


def test_forked_child_starts_its_own_sqlite_helper() -> None:
    parent_helper = bulk_sqlite.call({"op": "ping"})[0]["pid"]
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_child_reports_helper_pid, args=(there,))
    proc.start()
    child_helper = here.recv()
    proc.join(30)
    assert child_helper != parent_helper
    assert bulk_sqlite.call({"op": "ping"})[0]["pid"] == parent_helper  # untouched, still serving


@only_on("sqlite")
def test_a_helper_that_died_while_idle_is_replaced(store: Store) -> None:
    run_hash = new_run(store)
    store.insert_equity(run_hash, equity_frame(10))
    for attempt in range(2):  # 0: dead and reaped before the next call; 1: killed just before it
        pid = bulk_sqlite.call({"op": "ping"})[0]["pid"]
        os.kill(pid, 9)
        if attempt == 0:
            while Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                time.sleep(0.01)
        assert len(store.read_equity(run_hash)) == 10  # a read is retried on a fresh helper
        assert bulk_sqlite.call({"op": "ping"})[0]["pid"] != pid
    store.insert_equity(run_hash, equity_frame(5, start=T0 - 10 * BAR))
    assert count(store, Equity, run_hash) == 15


def _child_uses_postgres(url: str, conn: Any) -> None:
    store = Store(url)
    run_hash = new_run(store)
    store.insert_equity(run_hash, equity_frame(50))
    conn.send(len(store.read_equity(run_hash)))
    os._exit(0)


@only_on("postgresql")
def test_forked_child_never_touches_the_parents_postgres_connection(store: Store) -> None:
    run_hash = new_run(store)
    store.insert_equity(run_hash, equity_frame(20))
    uri = bulk_postgres.libpq_uri(store.engine.url)
    (cached,) = bulk_postgres._idle.idle(uri)
    backend_pid = adbc.query(cached, "SELECT pg_backend_pid()").column(0)[0].as_py()
    cached.commit()
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_child_uses_postgres, args=(store.url, there))
    proc.start()
    assert here.recv() == 50
    proc.join(30)
    assert proc.exitcode == 0
    assert bulk_postgres._idle.idle(uri) == [cached]  # the same connection, still open on the same session
    assert adbc.query(cached, "SELECT pg_backend_pid()").column(0)[0].as_py() == backend_pid
    cached.commit()
    assert len(store.read_equity(run_hash)) == 20


# -- PostgreSQL URL handling -----------------------------------------------------------------------------


def test_libpq_uri_keeps_credentials_and_drops_the_driver() -> None:
    url = make_url("postgresql+psycopg://ana:p%40ss%3Aw%2Fd@db.example:6543/alpha?sslmode=require")
    assert bulk_postgres.libpq_uri(url) == "postgresql://ana:p%40ss%3Aw%2Fd@db.example:6543/alpha?sslmode=require"
    assert bulk_postgres.libpq_uri(make_url("postgresql+psycopg://u@127.0.0.1/x")) == "postgresql://u@127.0.0.1/x"


def test_connection_errors_never_show_the_password() -> None:
    if not bulk_postgres.available():
        pytest.skip("adbc_driver_postgresql not installed")
    url = make_url("postgresql+psycopg://nobody:s3cr3t-pw@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailable) as info:
        bulk_postgres.acquire(url)
    assert "s3cr3t-pw" not in str(info.value) and "***" in str(info.value)


@only_on("sqlite")
def test_prepare_bulk_starts_the_helper_a_large_call_then_uses(store: Store) -> None:
    assert store.engine.url.database not in (None, "", ":memory:")  # a helper serves SQLite files only
    bulk_sqlite.shutdown()
    store.prepare_bulk(100)  # a small call stays in this process: no helper
    assert bulk_sqlite._idle.idle("any") == []
    store.prepare_bulk(SMALL_FRAME_ROWS)
    (helper,) = bulk_sqlite._idle.idle("any")
    store.prepare_bulk(SMALL_FRAME_ROWS)  # already one idle: not a second
    assert bulk_sqlite._idle.idle("any") == [helper]
    run_hash = new_run(store)
    store.insert_equity(run_hash, equity_frame(SMALL_FRAME_ROWS))
    assert bulk_sqlite.call({"op": "ping"})[0]["pid"] == helper.proc.pid  # the prestarted helper did the write
    assert count(store, Equity, run_hash) == SMALL_FRAME_ROWS


@only_on("sqlite")
def test_a_read_takes_the_helper_from_small_frame_rows_on(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read's path by the run's row count, counted only up to the threshold: below it in this process
    (no helper started), at it and far above it through the helper; the same rows either way."""
    monkeypatch.setattr(bulk, "SMALL_FRAME_ROWS", 10)
    runs = {rows: new_run(store) for rows in (9, 10, 25)}
    for rows, run_hash in runs.items():
        store.insert_equity(run_hash, equity_frame(rows))
    for rows, run_hash in runs.items():
        bulk_sqlite.shutdown()
        assert_same_frame(store.read_equity(run_hash), equity_frame(rows))
        assert (bulk_sqlite._idle.idle("any") != []) == (rows >= 10), rows
    assert bulk._stored_rows(store.engine, "equity", runs[25], 10) == 10
    assert bulk._stored_rows(store.engine, "equity", runs[9], 10) == 9


# -- several runs in one call (a sweep batch's equity curves) -------------------------------------------

SEVERAL = [50, 20_000]  # per run; 3 runs: 150 rows (in process on SQLite) or 60,000 (the helper on SQLite)


def _owned_runs(store: Store, n: int, owner: str) -> list[str]:
    runs = [new_run(store) for _ in range(n)]
    with store.session() as s:
        for run_hash in runs:
            s.get(Run, run_hash).worker = owner  # type: ignore[union-attr]
    return runs


@pytest.mark.parametrize("rows", SEVERAL)
def test_equity_of_several_runs_in_one_call_stores_what_one_call_per_run_stores(bstore: Store, rows: int) -> None:
    frames = [equity_frame(rows, seed=i, start=T0 + i * BAR).sample(frac=1.0, random_state=i) for i in range(3)]
    together = _owned_runs(bstore, 3, "host:1")
    assert bstore.insert_equity_runs(list(zip(together, frames, strict=True)), owner="host:1") == 3 * rows
    alone = _owned_runs(bstore, 3, "host:1")
    for run_hash, frame in zip(alone, frames, strict=True):
        assert bstore.insert_equity(run_hash, frame, owner="host:1") == rows
    for i, (run_hash, single) in enumerate(zip(together, alone, strict=True)):
        got = bstore.read_equity(run_hash)
        assert_same_frame(got, equity_frame(rows, seed=i, start=T0 + i * BAR))
        assert_same_frame(got, bstore.read_equity(single))
    assert bstore.insert_equity_runs([]) == 0 and bstore.insert_equity_runs([(alone[0], equity_frame(0))]) == 0


@pytest.mark.parametrize("rows", SEVERAL)
def test_several_runs_in_one_call_are_each_fenced_and_stored_all_or_nothing(bstore: Store, rows: int) -> None:
    runs = _owned_runs(bstore, 3, "host:1")
    with bstore.session() as s:
        s.get(Run, runs[1]).status = "failed"  # type: ignore[union-attr]  # the middle one was recovered
    curves = [(run_hash, equity_frame(rows, seed=i)) for i, run_hash in enumerate(runs)]
    with pytest.raises(RunAbandoned) as info:
        bstore.insert_equity_runs(curves, owner="host:1")
    assert info.value.context.get("run_hash") == runs[1] and "failed" in str(info.value)
    assert [count(bstore, Equity, run_hash) for run_hash in runs] == [0, 0, 0]
    bad = equity_frame(rows, seed=7)
    bad.loc[rows // 2, "drawdown"] = np.float32(-1.0)  # the third run's rows break ck_equity_drawdown_nonneg
    with pytest.raises(DataInvalid) as check:
        bstore.insert_equity_runs([curves[0], curves[2], (runs[1], bad)])  # unfenced: the status is not checked
    assert check.value.context.get("row") == rows // 2  # found in the rows of the run that broke it
    assert [count(bstore, Equity, run_hash) for run_hash in runs] == [0, 0, 0]
    assert bstore.insert_equity_runs([curves[0], curves[2]], owner="host:1") == 2 * rows
    assert [count(bstore, Equity, run_hash) for run_hash in runs] == [rows, 0, rows]
