"""Shared fixtures: real databases only.

``store`` / ``db_url`` are parametrized over SQLite (always) and PostgreSQL (whenever
``ALPHAFORGE_TEST_PG_URL`` is set). Under ``CI=true`` an unset or unreachable PostgreSQL fails the session
loudly instead of skipping. PostgreSQL tests run in databases of their own (created from the admin URL and
dropped afterwards); SQLite tests in files under ``tmp_path``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from alphaforge.db.engine import dispose_engine
from alphaforge.db.models import Base
from alphaforge.db.store import Store

PG_URL = os.environ.get("ALPHAFORGE_TEST_PG_URL")
IN_CI = os.environ.get("CI") == "true"
BACKENDS = ["sqlite", "postgresql"]


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    assert PG_URL
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not IN_CI:
        return
    if not PG_URL:
        pytest.exit("CI=true but ALPHAFORGE_TEST_PG_URL is not set: PostgreSQL tests must run in CI", 3)
    try:
        with _pg_admin_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL must stop CI
        pytest.exit(f"CI=true but PostgreSQL at ALPHAFORGE_TEST_PG_URL is unreachable: {exc}", 3)


def create_pg_database() -> str:
    """A new empty PostgreSQL database; returns its URL."""
    name = f"af_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin_engine().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)  # type: ignore[arg-type]


def drop_pg_database(url: str) -> None:
    dispose_engine(url)
    name = make_url(url).database
    with _pg_admin_engine().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def race_in_processes(
    target: Callable[..., None], args: Sequence[tuple[Any, ...]], *, timeout_s: float = 120
) -> list[Any]:
    """One spawned process per ``args`` tuple, each calling ``target(*args, barrier, out)``: the shared barrier
    lines them up so that they race, and each puts its result on ``out``. Returns the results in arrival order
    once every process has exited with status 0."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=timeout_s) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return results


def _require_backend(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL tests need ALPHAFORGE_TEST_PG_URL (CI always sets it)")


def only_on(*backends: str) -> pytest.MarkDecorator:
    """Run a test on some backends only (the others are not generated, rather than skipped)."""
    unknown = set(backends) - set(BACKENDS)
    assert not unknown, unknown
    return pytest.mark.parametrize("backend", backends, indirect=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    _require_backend(request.param)
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database (no schema)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        yield url
        dispose_engine(url)
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    Store(url)
    dispose_engine(url)
    return path


@pytest.fixture(scope="session")
def _pg_session_db() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    url = create_pg_database()
    Store(url)
    yield url
    drop_pg_database(url)


def _truncate_pg(url: str) -> None:
    dispose_engine(url)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} CASCADE"))
    engine.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, _sqlite_template: Path, _pg_session_db: str | None) -> Iterator[str]:
    """The URL of a migrated database that is empty of rows, private to this test."""
    if backend == "sqlite":
        path = tmp_path / "alphaforge.db"
        shutil.copyfile(_sqlite_template, path)
        url = f"sqlite:///{path}"
        yield url
        dispose_engine(url)
        return
    assert _pg_session_db is not None
    _truncate_pg(_pg_session_db)
    yield _pg_session_db
    _truncate_pg(_pg_session_db)


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(db_url)
