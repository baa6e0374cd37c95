"""initial schema: the eight entities of the data model

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "features_cache",
        sa.Column("meta_hash", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("built_at", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "length(digest) = 64 AND ltrim(digest, '0123456789abcdef') = ''",
            name=op.f("ck_features_cache_digest_hex64"),
        ),
        sa.CheckConstraint(
            "length(meta_hash) = 64 AND ltrim(meta_hash, '0123456789abcdef') = ''",
            name=op.f("ck_features_cache_meta_hash_hex64"),
        ),
        sa.CheckConstraint("built_at >= 0", name=op.f("ck_features_cache_built_at_nonneg")),
        sa.CheckConstraint("columns >= 0", name=op.f("ck_features_cache_columns_nonneg")),
        sa.CheckConstraint("rows >= 0", name=op.f("ck_features_cache_rows_nonneg")),
        sa.PrimaryKeyConstraint("meta_hash", name=op.f("pk_features_cache")),
    )
    op.create_table(
        "runs",
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("data_hash", sa.Text(), nullable=False),
        sa.Column("seed_root", sa.BigInteger(), nullable=False),
        sa.Column("db_version", sa.Integer(), nullable=False),
        sa.Column("bootstrap_seed", sa.BigInteger(), nullable=False),
        sa.Column("walk_forward_spec_json", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "length(data_hash) = 64 AND ltrim(data_hash, '0123456789abcdef') = ''",
            name=op.f("ck_runs_data_hash_hex64"),
        ),
        sa.CheckConstraint(
            "length(run_hash) = 64 AND ltrim(run_hash, '0123456789abcdef') = ''",
            name=op.f("ck_runs_run_hash_hex64"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'failed', 'completed')", name=op.f("ck_runs_status_enum")
        ),
        sa.CheckConstraint(
            "bootstrap_seed >= 0 AND bootstrap_seed <= 4294967295", name=op.f("ck_runs_bootstrap_seed_uint32")
        ),
        sa.CheckConstraint("created_at >= 0", name=op.f("ck_runs_created_at_nonneg")),
        sa.CheckConstraint("db_version >= 1", name=op.f("ck_runs_db_version_positive")),
        sa.CheckConstraint(
            "seed_root >= 0 AND seed_root <= 4294967295", name=op.f("ck_runs_seed_root_uint32")
        ),
        sa.CheckConstraint("updated_at >= created_at", name=op.f("ck_runs_updated_after_created")),
        sa.PrimaryKeyConstraint("run_hash", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_status_updated_at"), "runs", ["status", "updated_at"], unique=False)

    op.create_table(
        "equity",
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("equity", sa.REAL(), nullable=False),
        sa.Column("drawdown", sa.REAL(), nullable=False),
        sa.Column("realized_pnl", sa.REAL(), nullable=False),
        sa.Column("unrealized_pnl", sa.REAL(), nullable=False),
        sa.Column("cost_drag", sa.REAL(), nullable=False),
        sa.CheckConstraint("drawdown >= 0", name=op.f("ck_equity_drawdown_nonneg")),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_equity_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_hash", "ts", name=op.f("pk_equity")),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_type", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "value_type IN ('int', 'float', 'str', 'json')", name=op.f("ck_metrics_value_type_enum")
        ),
        sa.CheckConstraint("length(key) > 0", name=op.f("ck_metrics_key_nonempty")),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_metrics_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
    )
    op.create_index(
        "uq_metrics_run_hash_key_nullphase",
        "metrics",
        ["run_hash", "key"],
        unique=True,
        sqlite_where=sa.text("phase IS NULL"),
        postgresql_where=sa.text("phase IS NULL"),
    )
    op.create_index("uq_metrics_run_hash_key_phase", "metrics", ["run_hash", "key", "phase"], unique=True)

    op.create_table(
        "phase_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("rows_processed", sa.BigInteger(), nullable=True),
        sa.Column("extra_json", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(ended_at IS NULL AND duration_ms IS NULL) OR (ended_at IS NOT NULL AND duration_ms IS NOT NULL AND ended_at >= started_at AND duration_ms = ended_at - started_at)",
            name=op.f("ck_phase_metrics_ended_after_started"),
        ),
        sa.CheckConstraint("length(phase) > 0", name=op.f("ck_phase_metrics_phase_nonempty")),
        sa.CheckConstraint(
            "rows_processed IS NULL OR rows_processed >= 0",
            name=op.f("ck_phase_metrics_rows_processed_nonneg"),
        ),
        sa.CheckConstraint("started_at >= 0", name=op.f("ck_phase_metrics_started_at_nonneg")),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_phase_metrics_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phase_metrics")),
    )
    op.create_index(op.f("ix_phase_metrics_run_hash"), "phase_metrics", ["run_hash"], unique=False)

    op.create_table(
        "run_errors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("stack_hash", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "length(stack_hash) = 64 AND ltrim(stack_hash, '0123456789abcdef') = ''",
            name=op.f("ck_run_errors_stack_hash_hex64"),
        ),
        sa.CheckConstraint("length(error_code) > 0", name=op.f("ck_run_errors_error_code_nonempty")),
        sa.CheckConstraint("ts >= 0", name=op.f("ck_run_errors_ts_nonneg")),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_run_errors_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_errors")),
    )
    op.create_index(op.f("ix_run_errors_run_hash"), "run_errors", ["run_hash"], unique=False)

    op.create_table(
        "trades",
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("qty", sa.REAL(), nullable=False),
        sa.Column("entry_price", sa.REAL(), nullable=True),
        sa.Column("exit_price", sa.REAL(), nullable=True),
        sa.Column("cost_bps", sa.REAL(), nullable=False),
        sa.Column("borrow_cost", sa.REAL(), nullable=False),
        sa.Column("pnl", sa.REAL(), nullable=False),
        sa.Column("position_after", sa.REAL(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell', 'flat')", name=op.f("ck_trades_side_enum")),
        sa.CheckConstraint("cost_bps >= 0", name=op.f("ck_trades_cost_bps_nonneg")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_trades_seq_nonneg")),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_trades_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_hash", "seq", name=op.f("pk_trades")),
    )
    op.create_index(op.f("ix_trades_run_hash_ts"), "trades", ["run_hash", "ts"], unique=False)

    op.create_table(
        "validation",
        sa.Column("run_hash", sa.Text(), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("permutation_pvalue", sa.REAL(), nullable=True),
        sa.Column("bootstrap_sharpe_low", sa.REAL(), nullable=True),
        sa.Column("bootstrap_sharpe_high", sa.REAL(), nullable=True),
        sa.Column("bootstrap_cagr_low", sa.REAL(), nullable=True),
        sa.Column("bootstrap_cagr_high", sa.REAL(), nullable=True),
        sa.Column("bootstrap_method", sa.Text(), nullable=False),
        sa.Column("bootstrap_block_length", sa.Integer(), nullable=True),
        sa.Column("bootstrap_jitter", sa.Integer(), nullable=True),
        sa.Column("bootstrap_fallback", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(bootstrap_method <> 'simple' OR (bootstrap_block_length IS NULL AND bootstrap_jitter IS NULL)) AND (bootstrap_method <> 'hadj_bb' OR (bootstrap_block_length IS NOT NULL AND bootstrap_block_length >= 1))",
            name=op.f("ck_validation_bootstrap_coherence"),
        ),
        sa.CheckConstraint(
            "bootstrap_method IN ('hadj_bb', 'simple')", name=op.f("ck_validation_bootstrap_method_enum")
        ),
        sa.CheckConstraint(
            "(bootstrap_cagr_low IS NULL AND bootstrap_cagr_high IS NULL) OR (bootstrap_cagr_low IS NOT NULL AND bootstrap_cagr_high IS NOT NULL AND bootstrap_cagr_low <= bootstrap_cagr_high)",
            name=op.f("ck_validation_cagr_ci_ordered"),
        ),
        sa.CheckConstraint(
            "(bootstrap_sharpe_low IS NULL AND bootstrap_sharpe_high IS NULL) OR (bootstrap_sharpe_low IS NOT NULL AND bootstrap_sharpe_high IS NOT NULL AND bootstrap_sharpe_low <= bootstrap_sharpe_high)",
            name=op.f("ck_validation_sharpe_ci_ordered"),
        ),
        sa.CheckConstraint(
            "bootstrap_fallback IN (0, 1)", name=op.f("ck_validation_bootstrap_fallback_bool")
        ),
        sa.CheckConstraint(
            "bootstrap_jitter IS NULL OR bootstrap_jitter >= 0",
            name=op.f("ck_validation_bootstrap_jitter_nonneg"),
        ),
        sa.CheckConstraint(
            "permutation_pvalue IS NULL OR (permutation_pvalue >= 0 AND permutation_pvalue <= 1)",
            name=op.f("ck_validation_pvalue_unit_interval"),
        ),
        sa.ForeignKeyConstraint(
            ["run_hash"], ["runs.run_hash"], name=op.f("fk_validation_run_hash_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_hash", name=op.f("pk_validation")),
    )


def downgrade() -> None:
    op.drop_table("validation")
    op.drop_index(op.f("ix_trades_run_hash_ts"), table_name="trades")

    op.drop_table("trades")
    op.drop_index(op.f("ix_run_errors_run_hash"), table_name="run_errors")

    op.drop_table("run_errors")
    op.drop_index(op.f("ix_phase_metrics_run_hash"), table_name="phase_metrics")

    op.drop_table("phase_metrics")
    op.drop_index("uq_metrics_run_hash_key_phase", table_name="metrics")
    op.drop_index(
        "uq_metrics_run_hash_key_nullphase",
        table_name="metrics",
        sqlite_where=sa.text("phase IS NULL"),
        postgresql_where=sa.text("phase IS NULL"),
    )

    op.drop_table("metrics")
    op.drop_table("equity")
    op.drop_index(op.f("ix_runs_status_updated_at"), table_name="runs")

    op.drop_table("runs")
    op.drop_table("features_cache")
