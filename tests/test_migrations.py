"""Migrations: pytest-alembic's standard tests on both backends, the CLI from the repo root, the guard."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import create_pg_database, drop_pg_database, race_in_processes
from pytest_alembic import tests as pa_tests
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

import alphaforge
from alphaforge.db import migrate
from alphaforge.db.engine import dispose_engine
from alphaforge.db.store import Store
from alphaforge.errors import SchemaAhead, SchemaBehind

REPO = Path(__file__).resolve().parent.parent
TABLES = {"runs", "trades", "equity", "validation", "metrics", "features_cache", "run_errors", "phase_metrics",
          "studies", "sweeps", "sweep_points", "family_reports", "input_digests"}


@pytest.fixture
def alembic_config() -> dict[str, str]:
    return {"script_location": str(migrate.script_location())}


@pytest.fixture
def alembic_engine(empty_db_url: str) -> Iterator[Engine]:
    engine = create_engine(empty_db_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def test_single_head_revision(alembic_runner) -> None:  # type: ignore[no-untyped-def]
    pa_tests.test_single_head_revision(alembic_runner)


def test_upgrade(alembic_runner) -> None:  # type: ignore[no-untyped-def]
    pa_tests.test_upgrade(alembic_runner)


def test_model_definitions_match_ddl(alembic_runner) -> None:  # type: ignore[no-untyped-def]
    pa_tests.test_model_definitions_match_ddl(alembic_runner)


def test_up_down_consistency(alembic_runner) -> None:  # type: ignore[no-untyped-def]
    pa_tests.test_up_down_consistency(alembic_runner)


def test_schema_version_is_the_integer_head() -> None:
    head = migrate.head_revision()
    assert head.isdigit() and len(head) == 4
    assert alphaforge.SCHEMA_VERSION == int(head) == migrate.SCHEMA_VERSION


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _alembic_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("alembic")
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, check=False)


def test_alembic_cli_from_repo_root_upgrade_check_downgrade(empty_db_url: str) -> None:
    up = _alembic_cli("-x", f"db={empty_db_url}", "upgrade", "head")
    assert up.returncode == 0, up.stderr
    assert _tables(empty_db_url) == TABLES
    check = _alembic_cli("-x", f"db={empty_db_url}", "check")
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr
    down = _alembic_cli("-x", f"db={empty_db_url}", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert _tables(empty_db_url) == set()


def test_alembic_cli_reads_url_from_environment(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    env = {**os.environ, "ALPHAFORGE_DB_URL": f"sqlite:///{db}"}
    exe = Path(sys.executable).with_name("alembic")
    out = subprocess.run([str(exe), "upgrade", "head"], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _tables(f"sqlite:///{db}") == TABLES


def test_empty_database_is_created_on_open(empty_db_url: str) -> None:
    store = Store(empty_db_url)
    assert store.schema_revision() == f"{migrate.SCHEMA_VERSION:04d}"
    assert _tables(empty_db_url) == TABLES


def _set_revision(url: str, revision: str) -> None:
    dispose_engine(url)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_database_ahead_of_the_code_is_refused(empty_db_url: str) -> None:
    Store(empty_db_url)
    _set_revision(empty_db_url, "9999")
    with pytest.raises(SchemaAhead, match="9999"):
        Store(empty_db_url)


def test_database_behind_the_code_names_revisions_and_command(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url, poolclass=NullPool)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    # stamp a revision older than head: pretend head is newer than what the database has
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0000')"))
    engine.dispose()
    with pytest.raises(SchemaBehind) as info:
        Store(empty_db_url)
    message = str(info.value)
    assert "0000" in message and f"{migrate.SCHEMA_VERSION:04d}" in message
    assert "alphaforge db upgrade --db" in message


def _upgrade_in_process(url: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[name-defined]
    try:
        barrier.wait(timeout=30)
        engine = create_engine(url, poolclass=NullPool)
        migrate.upgrade(engine)
        engine.dispose()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_upgrading_at_once_both_succeed(empty_db_url: str) -> None:
    results = race_in_processes(_upgrade_in_process, [(empty_db_url,)] * 2)
    assert results == ["ok", "ok"]
    assert _tables(empty_db_url) == TABLES
    assert Store(empty_db_url).schema_revision() == f"{migrate.SCHEMA_VERSION:04d}"


@pytest.mark.parametrize("where", ["file", "memory"])
def test_foreign_keys_are_on_for_every_connection_after_an_automatic_migration(tmp_path: Path, where: str) -> None:
    url = f"sqlite:///{tmp_path / 'fk.db'}" if where == "file" else "sqlite://"
    store = Store(url)  # empty: migrated on open, by a connection that goes back to the pool
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        dispose_engine(url)


def _schema(url: str) -> dict[str, Any]:
    """Everything the inspector sees of a database's schema, in a comparable form."""
    engine = create_engine(url, poolclass=NullPool)

    def norm(sql: Any) -> str:
        return " ".join(str(sql).split())

    try:
        insp = inspect(engine)
        out: dict[str, Any] = {}
        for table in sorted(insp.get_table_names()):
            out[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], norm(c.get("default")))
                            for c in insp.get_columns(table)],
                "pk": insp.get_pk_constraint(table),
                "fks": sorted((f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"],
                               tuple(f["referred_columns"]), str(sorted(f.get("options", {}).items())))
                              for f in insp.get_foreign_keys(table)),
                "indexes": sorted((i["name"] or "", tuple(i["column_names"]), bool(i["unique"]),
                                   norm(sorted((k, norm(v)) for k, v in i.get("dialect_options", {}).items())))
                                  for i in insp.get_indexes(table)),
                "uniques": sorted((u["name"] or "", tuple(u["column_names"]))
                                  for u in insp.get_unique_constraints(table)),
                "checks": sorted((c["name"] or "", norm(c["sqltext"])) for c in insp.get_check_constraints(table)),
            }
        with engine.connect() as conn:
            out["alembic_version"]["rows"] = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        return out
    finally:
        engine.dispose()


def test_an_empty_database_is_created_at_head_with_exactly_the_migrated_schema(empty_db_url: str, backend: str,
                                                                                tmp_path: Path) -> None:
    """Opening an empty database creates the models' tables and stamps head (``migrate.create_at_head``) rather
    than running every migration: the resulting schema — columns and types, nullability, defaults, keys,
    foreign keys with their actions, indexes (partial ones included), unique and CHECK constraints with their
    names, the alembic version — is the one that upgrading 0001 → head gives."""
    migrated_url = f"sqlite:///{tmp_path / 'migrated.db'}" if backend == "sqlite" else create_pg_database()
    try:
        engine = create_engine(migrated_url, poolclass=NullPool)
        migrate.upgrade(engine)
        engine.dispose()
        Store(empty_db_url)
        dispose_engine(empty_db_url)
        created, migrated = _schema(empty_db_url), _schema(migrated_url)
        assert set(created) == TABLES | {"alembic_version"}
        for table in sorted(created):
            assert created[table] == migrated[table], table
    finally:
        if backend == "postgresql":
            drop_pg_database(migrated_url)
