"""Migrations 0002 and 0003 on a populated database: no row lost or changed, and downgrade → upgrade round-trips."""

from __future__ import annotations

import hashlib

import pytest
from _heavy import heavy_size
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from alphaforge.db import migrate

TABLES = ("runs", "trades", "equity", "validation", "metrics", "features_cache", "run_errors", "phase_metrics")
N_RUNS = 20
EQUITY_ROWS = heavy_size(1_000_000, minimum=N_RUNS)  # 1M locally; CI: ALPHAFORGE_HEAVY_SCALE=0.3 → 300k
H = "ab" * 32


def _populate(conn: Connection) -> None:
    per_run = EQUITY_ROWS // N_RUNS
    for i in range(N_RUNS):
        run_hash = f"{i:064x}"
        conn.execute(text(
            "INSERT INTO runs (run_hash, created_at, updated_at, status, config_json, manifest_json, data_hash,"
            " seed_root, db_version, bootstrap_seed) VALUES (:h, :t, :t, 'completed', '{\"i\":' || :i || '}',"
            " '{}', :d, :i, 1, :i)"
        ), {"h": run_hash, "t": 1_700_000_000_000 + i, "i": i, "d": H})
        series = ("WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < :n) SELECT k FROM s"
                  if conn.dialect.name == "sqlite" else "SELECT generate_series(0, :n - 1) AS k")
        conn.execute(text(
            f"INSERT INTO equity (run_hash, ts, equity, drawdown, realized_pnl, unrealized_pnl, cost_drag)"  # noqa: S608 - fixed SQL, no user input
            f" SELECT :h, CAST(1000000000 AS BIGINT) * k, 100000 + k * 0.25, (k % 7) * 0.01, k * 0.5, k * -0.125, k * 0.0625"
            f" FROM ({series}) AS g"
        ), {"h": run_hash, "n": per_run})
        conn.execute(text(
            "INSERT INTO trades (run_hash, seq, ts, side, qty, entry_price, exit_price, cost_bps, borrow_cost,"
            " pnl, position_after) VALUES (:h, 0, 5, 'buy', 1.5, 10.25, NULL, 1.5, 0, 0, 1.5),"
            " (:h, 1, 9, 'flat', -1.5, 10.25, 11.5, 1.5, 0.01, 1.875, 0)"
        ), {"h": run_hash})
        conn.execute(text(
            "INSERT INTO metrics (run_hash, key, value, value_type, phase) VALUES (:h, 'sharpe', '1.25', 'float',"
            " 'backtest'), (:h, 'note', 'x', 'str', NULL)"
        ), {"h": run_hash})
        conn.execute(text(
            "INSERT INTO validation (run_hash, payload_json, permutation_pvalue, bootstrap_method,"
            " bootstrap_block_length, bootstrap_jitter, bootstrap_fallback) VALUES (:h, '{}', 0.5, 'hadj_bb', 4, 1, 0)"
        ), {"h": run_hash})
        conn.execute(text(
            "INSERT INTO run_errors (run_hash, ts, phase, error_code, message, stack_hash) VALUES"
            " (:h, 1, 'load', 'DATA_INVALID', 'old failure', :d)"
        ), {"h": run_hash, "d": H})
        conn.execute(text(
            "INSERT INTO phase_metrics (run_hash, phase, started_at, ended_at, duration_ms, rows_processed,"
            " extra_json) VALUES (:h, 'backtest', 10, 25, 15, 100, '{}')"
        ), {"h": run_hash})
    conn.execute(text(
        "INSERT INTO features_cache (meta_hash, spec_json, built_at, rows, columns, digest)"
        " VALUES (:d, '{}', 1, 10, 2, :d)"
    ), {"d": H})


SPEC_COLUMNS = {  # the data model's columns (0002 only adds columns to runs)
    "runs": "run_hash, created_at, updated_at, status, config_json, manifest_json, data_hash, seed_root,"
            " db_version, bootstrap_seed, walk_forward_spec_json",
}


def _checksums(engine: Engine) -> dict[str, tuple[int, str]]:
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            columns = SPEC_COLUMNS.get(table) or ", ".join(c["name"] for c in inspect(conn).get_columns(table))
            pk = inspect(conn).get_pk_constraint(table)["constrained_columns"]
            digest, count = hashlib.sha256(), 0
            result = conn.execution_options(stream_results=True).exec_driver_sql(
                f"SELECT {columns} FROM {table} ORDER BY {', '.join(pk)}"  # noqa: S608 - fixed names
            )
            while chunk := result.fetchmany(50_000):
                digest.update(repr([tuple(r) for r in chunk]).encode())
                count += len(chunk)
            out[table] = (count, digest.hexdigest())
    return out


@pytest.mark.heavy
def test_0002_keeps_every_row_and_round_trips(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url, poolclass=NullPool)
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        _populate(conn)
    before = _checksums(engine)
    assert before["equity"][0] == EQUITY_ROWS - EQUITY_ROWS % N_RUNS and before["runs"][0] == N_RUNS

    migrate.upgrade(engine, "0002")
    assert _checksums(engine) == before
    with engine.connect() as conn:
        assert {"heartbeat_at", "worker"} <= {c["name"] for c in inspect(conn).get_columns("runs")}

    migrate.downgrade(engine, "0001")
    assert _checksums(engine) == before
    with engine.connect() as conn:
        assert "heartbeat_at" not in {c["name"] for c in inspect(conn).get_columns("runs")}

    migrate.upgrade(engine, "head")
    assert _checksums(engine) == before
    engine.dispose()


FAMILY_TABLES = ("studies", "sweeps", "sweep_points", "family_reports")


def _populate_family(conn: Connection) -> None:
    """A study with one sweep whose points name the runs of :func:`_populate` (one point skipped), and a report."""
    sweep_id = "cd" * 32
    conn.execute(text("INSERT INTO studies (name, data_hash, strategy, symbol, created_at)"
                      " VALUES ('s', :d, 'sma_cross', 'X', 1)"), {"d": H})
    conn.execute(text("INSERT INTO sweeps (sweep_id, study, data_hash, base_config_json, grid_json, n_points,"
                      " status, created_at, updated_at) VALUES (:w, 's', :d, '{}', '[]', :n, 'completed', 1, 2)"),
                 {"w": sweep_id, "d": H, "n": N_RUNS + 1})
    for i in range(N_RUNS):
        conn.execute(text("INSERT INTO sweep_points (sweep_id, point_index, params_json, run_hash, skip_reason)"
                          " VALUES (:w, :i, '{}', :h, NULL)"), {"w": sweep_id, "i": i, "h": f"{i:064x}"})
    conn.execute(text("INSERT INTO sweep_points (sweep_id, point_index, params_json, run_hash, skip_reason)"
                      " VALUES (:w, :i, '{}', NULL, 'fast >= slow')"), {"w": sweep_id, "i": N_RUNS})
    conn.execute(text("INSERT INTO family_reports (report_key, scope, study, sweep_id, params_json, seed,"
                      " family_hash, n_trials, report_json, methodology_version, created_at)"
                      " VALUES (:k, 'sweep', 's', :w, '{}', 7, :d, :n, '{}', '1', 3)"),
                 {"k": "ef" * 32, "w": sweep_id, "d": H, "n": N_RUNS})


@pytest.mark.heavy
def test_0003_adds_the_family_tables_keeps_every_row_and_round_trips(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url, poolclass=NullPool)
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        _populate(conn)
    before = _checksums(engine)

    migrate.upgrade(engine, "0003")
    assert _checksums(engine) == before
    with engine.begin() as conn:
        _populate_family(conn)
        assert set(FAMILY_TABLES) <= set(inspect(conn).get_table_names())

    migrate.downgrade(engine, "0002")
    assert _checksums(engine) == before
    with engine.connect() as conn:
        assert not set(FAMILY_TABLES) & set(inspect(conn).get_table_names())

    migrate.upgrade(engine, "head")
    assert _checksums(engine) == before
    with engine.begin() as conn:  # the family tables are back, empty and usable
        _populate_family(conn)
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608 - fixed names
                  for t in FAMILY_TABLES}
    assert counts == {"studies": 1, "sweeps": 1, "sweep_points": N_RUNS + 1, "family_reports": 1}
    engine.dispose()
