"""Reads never lock: read-only units of work take no write lock (SQLite) and refuse any write (both backends)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from _data_helpers import bars
from conftest import only_on
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url

from alphaforge.config import load_config
from alphaforge.data import dataset_from_frame
from alphaforge.db import engine as engine_module
from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import Metric, Run
from alphaforge.db.store import Store
from alphaforge.errors import DatabaseUnavailable
from alphaforge.runs.provenance import new_run
from alphaforge.runs.queries import list_runs, show_run
from alphaforge.runs.service import RunService

T = TypeVar("T")
BUSY_TIMEOUT_S = 1.0  # a read that waited for the write lock would fail after this long


def _new_run_hash(store: Store) -> str:
    config = load_config({"symbol": "LOCK", "strategy": {"name": "buy_and_hold"}})
    return RunService(store).create(new_run(config, dataset_from_frame(bars(30)))).run.run_hash


def _prompt(call: Callable[[], T], within_s: float = BUSY_TIMEOUT_S / 2) -> T:
    start = time.monotonic()
    result = call()
    assert time.monotonic() - start < within_s, "a read waited for the write lock"
    return result


@only_on("sqlite")
def test_reads_answer_while_another_connection_holds_the_write_lock(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_S", BUSY_TIMEOUT_S)
    dispose_engine(db_url)  # a new engine, whose connections get the short busy timeout
    store = Store(db_url)
    service = RunService(store)
    run_hash = _new_run_hash(store)
    assert service.claim(run_hash)  # running, with a fresh heartbeat: wait_for has to wait
    writer = sqlite3.connect(make_url(db_url).database or "", isolation_level=None, timeout=0,
                             check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, holding the lock
    writer.execute("UPDATE runs SET status = 'completed' WHERE run_hash = ?", (run_hash,))
    committer = threading.Timer(2 * BUSY_TIMEOUT_S, writer.execute, ("COMMIT",))
    try:
        assert _prompt(lambda: service.get(run_hash)).status == "running"  # the last committed state
        assert _prompt(lambda: service.resolve(run_hash[:12])) == run_hash
        assert _prompt(lambda: service.last_error(run_hash)) is None
        assert [r["run_hash"] for r in _prompt(lambda: list_runs(store))] == [run_hash]
        assert _prompt(lambda: show_run(store, run_hash))["status"] == "running"
        assert _prompt(lambda: store.read_all_metrics(run_hash)) == {}
        assert _prompt(lambda: store.get_cache_meta("0" * 64)) is None
        # wait_for polls through the writer's whole transaction (longer than the busy timeout) and sees its commit
        committer.start()
        start = time.monotonic()
        assert service.wait_for(run_hash, timeout_s=30, poll_s=0.05).status == "completed"
        assert 2 * BUSY_TIMEOUT_S <= time.monotonic() - start < 2 * BUSY_TIMEOUT_S + 1.0
    finally:
        committer.cancel()
        if committer.ident is not None:
            committer.join()
        writer.close()


def test_a_read_session_refuses_to_write(store: Store) -> None:
    run_hash = _new_run_hash(store)
    writes: list[Callable[[Any], Any]] = [
        lambda s: s.execute(update(Run).where(Run.run_hash == run_hash).values(status="running")),
        lambda s: s.add(Metric(run_hash=run_hash, key="k", value="1", value_type="int", phase=None)),  # flushed
    ]
    for write in writes:
        with pytest.raises(DatabaseUnavailable, match="read-only|readonly") as info:
            with store.read_session() as s:
                write(s)
        assert store.masked_url in str(info.value)
    with pytest.raises(DatabaseUnavailable, match="read-only|readonly"):
        with store.read_connection() as conn:
            conn.execute(insert(Metric).values(run_hash=run_hash, key="k", value="1", value_type="int"))
    assert RunService(store).get(run_hash).status == "pending" and store.read_all_metrics(run_hash) == {}
    with store.session() as s:  # a write session on the same pool still writes
        s.execute(update(Run).where(Run.run_hash == run_hash).values(status="running"))
    assert RunService(store).get(run_hash).status == "running"


_READ_ONLY_NOW = {"sqlite": "PRAGMA query_only", "postgresql": "SHOW transaction_read_only"}


def test_each_transaction_is_read_only_exactly_when_it_is_a_read(store: Store) -> None:
    # The read-only switch is per connection on SQLite: a pooled connection must not carry it into a write.
    sql = text(_READ_ONLY_NOW[store.dialect])
    for _ in range(3):
        with store.read_session() as s:
            assert str(s.scalar(sql)) in ("1", "on")
        with store.session() as s:
            assert str(s.scalar(sql)) in ("0", "off")
        with store.read_connection() as conn:
            assert str(conn.scalar(sql)) in ("1", "on")
