"""Library callers get the catalog's typed errors for database failures, never a driver exception, and never a
password: Store construction, both kinds of session and the bulk paths, on real databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _data_helpers import bars
from conftest import PG_URL
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from alphaforge.config import load_config
from alphaforge.data import dataset_from_frame
from alphaforge.db.engine import dispose_engine
from alphaforge.db.store import Store
from alphaforge.db.urls import mask_url
from alphaforge.errors import DatabaseUnavailable
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import RunService

SECRET = "s3cret-pw"
CLOSED_PORT_URL = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x"


def _a_new_run() -> Any:
    config = load_config({"symbol": "GONE", "strategy": {"name": "buy_and_hold"}})
    return new_run(config, dataset_from_frame(bars(20)))


def _every_entry_point(store: Store, run_hash: str) -> dict[str, Callable[[], Any]]:
    """One call per way a library caller reaches the database."""
    def in_session() -> None:
        with store.session() as s:
            s.execute(text("SELECT 1"))

    def in_read_session() -> None:
        with store.read_session() as s:
            s.execute(text("SELECT 1"))

    return {
        "session": in_session, "read_session": in_read_session,
        "get": lambda: RunService(store).get(run_hash), "create": lambda: RunService(store).create(_a_new_run()),
        "read_trades": lambda: store.read_trades(run_hash), "read_equity": lambda: store.read_equity(run_hash),
        "insert_equity": lambda: store.insert_equity(run_hash, [
            {"ts": 1, "equity": 1.0, "drawdown": 0.0, "realized_pnl": 0.0, "unrealized_pnl": 0.0, "cost_drag": 0.0}
        ]),
        "cache_meta": lambda: store.get_cache_meta("0" * 64),
    }


def _assert_unavailable(call: Callable[[], Any], url: str) -> DatabaseUnavailable:
    with pytest.raises(DatabaseUnavailable) as info:
        call()
    message = str(info.value)
    assert mask_url(url) in message, message
    password = make_url(url).password
    assert not password or str(password) not in message
    return info.value


def test_an_unreachable_postgresql_raises_database_unavailable_without_the_password() -> None:
    error = _assert_unavailable(lambda: Store(CLOSED_PORT_URL), CLOSED_PORT_URL)
    assert "cannot open database postgresql+psycopg://u:***@127.0.0.1:1/x" in str(error)
    assert isinstance(error.__cause__, DBAPIError)  # the driver's error stays chained
    store = Store(CLOSED_PORT_URL, ensure_schema=False)
    for name, call in _every_entry_point(store, "a" * 64).items():
        error = _assert_unavailable(call, CLOSED_PORT_URL)
        assert SECRET not in repr(error.context), name


def test_a_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    url = f"sqlite:///{path}"
    try:
        error = _assert_unavailable(lambda: Store(url), url)
        assert "file is not a database" in str(error) and isinstance(error.__cause__, DBAPIError)
        store = Store(url, ensure_schema=False)
        for call in _every_entry_point(store, "a" * 64).values():
            _assert_unavailable(call, url)
        assert path.read_bytes().startswith(b"these are my notes")  # nothing was written to it
    finally:
        dispose_engine(url)


def _make_unreachable(url: str, backend: str) -> None:
    """The database goes away under an open Store (its pooled connections included)."""
    if backend == "postgresql":
        assert PG_URL
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()
        return
    # An open SQLite connection keeps reading a file that was replaced, by design; new connections cannot.
    path = Path(make_url(url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"\x00garbage" * 1000)


def test_a_database_that_goes_away_mid_way_raises_database_unavailable(empty_db_url: str, backend: str) -> None:
    store = Store(empty_db_url)
    run_hash = RunService(store).create(_a_new_run()).run.run_hash
    assert store.read_equity(run_hash).empty  # the bulk path has a connection open now, too
    _make_unreachable(empty_db_url, backend)
    if backend == "sqlite":
        store.engine.dispose()  # the next sessions open new connections
    for call in _every_entry_point(store, run_hash).values():
        _assert_unavailable(call, empty_db_url)


def test_a_sqlite_path_that_cannot_be_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    try:
        assert "unable to open database file" in str(_assert_unavailable(lambda: Store(url), url))
    finally:
        dispose_engine(url)
    assert not (tmp_path / "no-such-dir").exists()
