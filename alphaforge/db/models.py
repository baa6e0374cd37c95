"""The domain model: the eight mapped classes of the data model, plus the four of sweep families (migration
0003: studies, sweeps, sweep points and family reports), in SQLAlchemy 2.0 typed declarative.

Every constraint and index has a stable name (``MetaData(naming_convention=...)``) that migrations refer to.
Enums, the bootstrap coherence rule and the other facts the data model implies are named CHECK constraints,
written in SQL that means the same on SQLite and PostgreSQL.

Types: epoch-ns / epoch-ms fields are BIGINT; the data model's float32 fields are ``REAL`` (4 bytes on
PostgreSQL); canonical-JSON fields are TEXT; uint32 seeds are BIGINT with a range CHECK.

High-volume children (``trades``, ``equity``) are never loaded through the relationship (``lazy="raise"``);
``Store.read_trades`` / ``Store.read_equity`` are the read paths. Deleting a run cascades in the database
(``ON DELETE CASCADE``) and in the session (``delete-orphan`` with ``passive_deletes``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from alphaforge.enums import (
    BootstrapMethod,
    FamilyScope,
    InputKind,
    MetricValueType,
    RunStatus,
    SweepStatus,
    TradeSide,
    values,
)
from alphaforge.errors import RunNotFound

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TRADE_SIDES = values(TradeSide)
UINT32_MAX = 2**32 - 1

# Trade/equity value columns, in the data model's order (used by the bulk paths).
TRADE_VALUE_COLUMNS = (
    "qty", "entry_price", "exit_price", "cost_bps", "borrow_cost", "pnl", "position_after",
)
EQUITY_VALUE_COLUMNS = ("equity", "drawdown", "realized_pnl", "unrealized_pnl", "cost_drag")


def _in(column: str, enum: type[StrEnum]) -> str:
    """``column IN ('a', 'b')`` over the enum's values, in declaration order (the CHECK text migrations match)."""
    quoted = ", ".join(f"'{v}'" for v in values(enum))
    return f"{column} IN ({quoted})"


def _hex64(column: str) -> str:
    """A lowercase 64-hex-digit string (sha256), portable: ltrim(x, set) exists on both backends."""
    return f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''"


def _uint32(column: str) -> str:
    return f"{column} >= 0 AND {column} <= {UINT32_MAX}"


def _ck(sqltext: str, name: str) -> CheckConstraint:
    return CheckConstraint(sqltext, name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _run_fk() -> Any:
    return mapped_column(Text, ForeignKey("runs.run_hash", ondelete="CASCADE"), nullable=False)


class Run(Base):
    """One configuration + one dataset snapshot; identity is the content hash ``run_hash``."""

    __tablename__ = "runs"

    run_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    manifest_json: Mapped[str] = mapped_column(Text, nullable=False)
    data_hash: Mapped[str] = mapped_column(Text, nullable=False)
    seed_root: Mapped[int] = mapped_column(BigInteger, nullable=False)
    db_version: Mapped[int] = mapped_column(Integer, nullable=False)
    bootstrap_seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    walk_forward_spec_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # migration 0002: liveness of the worker executing the run (see alphaforge.runs.service, stale recovery)
    heartbeat_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    worker: Mapped[str | None] = mapped_column(Text, nullable=True)

    trades: Mapped[list[Trade]] = relationship(
        back_populates="run", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    equity: Mapped[list[Equity]] = relationship(
        back_populates="run", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    validation: Mapped[Validation | None] = relationship(
        back_populates="run", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )
    errors: Mapped[list[RunError]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True,
        order_by="RunError.id",
    )
    phase_metrics: Mapped[list[PhaseMetric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True,
        order_by="PhaseMetric.id",
    )
    # migration 0003: the sweep points that name this run (a point outlives its run: ON DELETE SET NULL)
    sweep_points: Mapped[list[SweepPoint]] = relationship(back_populates="run", passive_deletes=True)

    __table_args__ = (
        _ck(_in("status", RunStatus), "status_enum"),
        _ck(_hex64("run_hash"), "run_hash_hex64"),
        _ck(_hex64("data_hash"), "data_hash_hex64"),
        _ck(_uint32("seed_root"), "seed_root_uint32"),
        _ck(_uint32("bootstrap_seed"), "bootstrap_seed_uint32"),
        _ck("created_at >= 0", "created_at_nonneg"),
        _ck("updated_at >= created_at", "updated_after_created"),
        _ck("db_version >= 1", "db_version_positive"),
        _ck("heartbeat_at IS NULL OR heartbeat_at >= 0", "heartbeat_at_nonneg"),
        Index(None, "status", "updated_at"),
    )

    @classmethod
    def find(cls, session: Session, run_hash: str) -> Run:
        """The run with this exact hash, or :class:`RunNotFound`."""
        run = session.get(cls, run_hash)
        if run is None:
            raise RunNotFound(f"no run {run_hash}: list runs with `alphaforge runs list`", run_hash=run_hash)
        return run

    @classmethod
    def find_by_prefix(cls, session: Session, prefix: str) -> list[str]:
        """run_hashes starting with ``prefix`` (at most two: enough to tell unique from ambiguous)."""
        stmt = select(cls.run_hash).where(cls.run_hash.startswith(prefix, autoescape=True)).limit(2)
        return list(session.scalars(stmt))


class Trade(Base):
    """An execution event; ``seq`` orders the trades of one run (several fills may share a bar)."""

    __tablename__ = "trades"

    run_hash: Mapped[str] = mapped_column(
        Text, ForeignKey("runs.run_hash", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    side: Mapped[str] = mapped_column(Text, nullable=False)
    qty: Mapped[float] = mapped_column(REAL, nullable=False)
    entry_price: Mapped[float | None] = mapped_column(REAL, nullable=True)
    exit_price: Mapped[float | None] = mapped_column(REAL, nullable=True)
    cost_bps: Mapped[float] = mapped_column(REAL, nullable=False)
    borrow_cost: Mapped[float] = mapped_column(REAL, nullable=False)
    pnl: Mapped[float] = mapped_column(REAL, nullable=False)
    position_after: Mapped[float] = mapped_column(REAL, nullable=False)

    run: Mapped[Run] = relationship(back_populates="trades")

    __table_args__ = (
        _ck(_in("side", TradeSide), "side_enum"),
        _ck("seq >= 0", "seq_nonneg"),
        _ck("cost_bps >= 0", "cost_bps_nonneg"),
        Index(None, "run_hash", "ts"),
    )


class Equity(Base):
    """One row per bar: the equity curve and its decomposition."""

    __tablename__ = "equity"

    run_hash: Mapped[str] = mapped_column(
        Text, ForeignKey("runs.run_hash", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    equity: Mapped[float] = mapped_column(REAL, nullable=False)
    drawdown: Mapped[float] = mapped_column(REAL, nullable=False)
    realized_pnl: Mapped[float] = mapped_column(REAL, nullable=False)
    unrealized_pnl: Mapped[float] = mapped_column(REAL, nullable=False)
    cost_drag: Mapped[float] = mapped_column(REAL, nullable=False)

    run: Mapped[Run] = relationship(back_populates="equity")

    __table_args__ = (_ck("drawdown >= 0", "drawdown_nonneg"),)


class Validation(Base):
    """Statistical outputs of a run (at most one row per run)."""

    __tablename__ = "validation"

    run_hash: Mapped[str] = mapped_column(
        Text, ForeignKey("runs.run_hash", ondelete="CASCADE"), primary_key=True
    )
    payload_json: Mapped[str] = mapped_column(Text, nullable=False)
    permutation_pvalue: Mapped[float | None] = mapped_column(REAL, nullable=True)
    bootstrap_sharpe_low: Mapped[float | None] = mapped_column(REAL, nullable=True)
    bootstrap_sharpe_high: Mapped[float | None] = mapped_column(REAL, nullable=True)
    bootstrap_cagr_low: Mapped[float | None] = mapped_column(REAL, nullable=True)
    bootstrap_cagr_high: Mapped[float | None] = mapped_column(REAL, nullable=True)
    bootstrap_method: Mapped[str] = mapped_column(Text, nullable=False)
    bootstrap_block_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bootstrap_jitter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bootstrap_fallback: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    run: Mapped[Run] = relationship(back_populates="validation")

    __table_args__ = (
        _ck(_in("bootstrap_method", BootstrapMethod), "bootstrap_method_enum"),
        _ck("bootstrap_fallback IN (0, 1)", "bootstrap_fallback_bool"),
        _ck(
            f"(bootstrap_method <> '{BootstrapMethod.SIMPLE}'"
            " OR (bootstrap_block_length IS NULL AND bootstrap_jitter IS NULL))"
            f" AND (bootstrap_method <> '{BootstrapMethod.HADJ_BB}'"
            " OR (bootstrap_block_length IS NOT NULL AND bootstrap_block_length >= 1))",
            "bootstrap_coherence",
        ),
        _ck("bootstrap_jitter IS NULL OR bootstrap_jitter >= 0", "bootstrap_jitter_nonneg"),
        _ck(
            "permutation_pvalue IS NULL OR (permutation_pvalue >= 0 AND permutation_pvalue <= 1)",
            "pvalue_unit_interval",
        ),
        _ck(
            "(bootstrap_sharpe_low IS NULL AND bootstrap_sharpe_high IS NULL)"
            " OR (bootstrap_sharpe_low IS NOT NULL AND bootstrap_sharpe_high IS NOT NULL"
            " AND bootstrap_sharpe_low <= bootstrap_sharpe_high)",
            "sharpe_ci_ordered",
        ),
        _ck(
            "(bootstrap_cagr_low IS NULL AND bootstrap_cagr_high IS NULL)"
            " OR (bootstrap_cagr_low IS NOT NULL AND bootstrap_cagr_high IS NOT NULL"
            " AND bootstrap_cagr_low <= bootstrap_cagr_high)",
            "cagr_ci_ordered",
        ),
    )


class Metric(Base):
    """A typed key-value metric of a run, attributed to a phase; unique per (run_hash, key, phase)."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = _run_fk()
    key: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    value_type: Mapped[str] = mapped_column(Text, nullable=False)
    phase: Mapped[str | None] = mapped_column(Text, nullable=True)

    run: Mapped[Run] = relationship(back_populates="metrics")

    __table_args__ = (
        _ck(_in("value_type", MetricValueType), "value_type_enum"),
        _ck("length(key) > 0", "key_nonempty"),
        # NULL phases are distinct in a plain unique index on both backends, so a second, partial unique
        # index covers phase IS NULL: (run_hash, key, phase) is unique with NULL treated as one value.
        Index("uq_metrics_run_hash_key_phase", "run_hash", "key", "phase", unique=True),
        Index(
            "uq_metrics_run_hash_key_nullphase", "run_hash", "key", unique=True,
            sqlite_where=phase.is_(None), postgresql_where=phase.is_(None),
        ),
    )


class FeaturesCacheMeta(Base):
    """Metadata of one cached feature parquet file, keyed by the hash of its canonical spec."""

    __tablename__ = "features_cache"

    meta_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text, nullable=False)
    built_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    columns: Mapped[int] = mapped_column(Integer, nullable=False)
    digest: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        _ck(_hex64("meta_hash"), "meta_hash_hex64"),
        _ck(_hex64("digest"), "digest_hex64"),
        _ck("built_at >= 0", "built_at_nonneg"),
        _ck("rows >= 0", "rows_nonneg"),
        _ck("columns >= 0", "columns_nonneg"),
    )


class RunError(Base):
    """An exception captured during a run, kept for post-mortem."""

    __tablename__ = "run_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = _run_fk()
    ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    phase: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str] = mapped_column(Text, nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    stack_hash: Mapped[str] = mapped_column(Text, nullable=False)

    run: Mapped[Run] = relationship(back_populates="errors")

    __table_args__ = (
        _ck("ts >= 0", "ts_nonneg"),
        _ck("length(error_code) > 0", "error_code_nonempty"),
        _ck(_hex64("stack_hash"), "stack_hash_hex64"),
        Index(None, "run_hash"),
    )


class PhaseMetric(Base):
    """Timing and progress of one phase of a run; ``ended_at``/``duration_ms`` are set at phase end."""

    __tablename__ = "phase_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = _run_fk()
    phase: Mapped[str] = mapped_column(Text, nullable=False)
    started_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_processed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    extra_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")

    run: Mapped[Run] = relationship(back_populates="phase_metrics")

    __table_args__ = (
        _ck("length(phase) > 0", "phase_nonempty"),
        _ck("started_at >= 0", "started_at_nonneg"),
        _ck(
            "(ended_at IS NULL AND duration_ms IS NULL)"
            " OR (ended_at IS NOT NULL AND duration_ms IS NOT NULL"
            " AND ended_at >= started_at AND duration_ms = ended_at - started_at)",
            "ended_after_started",
        ),
        _ck("rows_processed IS NULL OR rows_processed >= 0", "rows_processed_nonneg"),
        Index(None, "run_hash"),
    )


# --------------------------------------------------------------------------- sweep families (migration 0003)


class Study(Base):
    """A family of sweeps on one dataset and one strategy: the set of trials selection statistics correct for."""

    __tablename__ = "studies"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    data_hash: Mapped[str] = mapped_column(Text, nullable=False)
    strategy: Mapped[str] = mapped_column(Text, nullable=False)
    symbol: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    sweeps: Mapped[list[Sweep]] = relationship(
        back_populates="study_row", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Sweep.created_at",
    )
    reports: Mapped[list[FamilyReport]] = relationship(
        back_populates="study_row", cascade="all, delete-orphan", passive_deletes=True,
    )

    __table_args__ = (
        _ck("length(name) > 0", "name_nonempty"),
        _ck(_hex64("data_hash"), "data_hash_hex64"),
        _ck("length(strategy) > 0", "strategy_nonempty"),
        _ck("created_at >= 0", "created_at_nonneg"),
    )


class Sweep(Base):
    """One grid over a base config on one dataset; ``sweep_id`` hashes {base config, grid, data_hash}."""

    __tablename__ = "sweeps"

    sweep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    study: Mapped[str] = mapped_column(
        Text, ForeignKey("studies.name", ondelete="CASCADE"), nullable=False
    )
    data_hash: Mapped[str] = mapped_column(Text, nullable=False)
    base_config_json: Mapped[str] = mapped_column(Text, nullable=False)
    grid_json: Mapped[str] = mapped_column(Text, nullable=False)
    n_points: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    study_row: Mapped[Study] = relationship(back_populates="sweeps")
    points: Mapped[list[SweepPoint]] = relationship(
        back_populates="sweep", cascade="all, delete-orphan", passive_deletes=True,
        order_by="SweepPoint.point_index",
    )
    reports: Mapped[list[FamilyReport]] = relationship(
        back_populates="sweep", cascade="all, delete-orphan", passive_deletes=True,
    )

    __table_args__ = (
        _ck(_hex64("sweep_id"), "sweep_id_hex64"),
        _ck(_hex64("data_hash"), "data_hash_hex64"),
        _ck(_in("status", SweepStatus), "status_enum"),
        _ck("n_points >= 0", "n_points_nonneg"),
        _ck("created_at >= 0", "created_at_nonneg"),
        _ck("updated_at >= created_at", "updated_after_created"),
        Index(None, "study"),
    )


class SweepPoint(Base):
    """One grid point of a sweep and the run that answers it (``NULL`` when skipped as invalid, or deleted)."""

    __tablename__ = "sweep_points"

    sweep_id: Mapped[str] = mapped_column(
        Text, ForeignKey("sweeps.sweep_id", ondelete="CASCADE"), primary_key=True
    )
    point_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    run_hash: Mapped[str | None] = mapped_column(
        Text, ForeignKey("runs.run_hash", ondelete="SET NULL"), nullable=True
    )
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    sweep: Mapped[Sweep] = relationship(back_populates="points")
    run: Mapped[Run | None] = relationship(back_populates="sweep_points")

    __table_args__ = (
        _ck("point_index >= 0", "point_index_nonneg"),
        _ck("run_hash IS NULL OR skip_reason IS NULL", "skipped_has_no_run"),
        Index(None, "run_hash"),
    )


class FamilyReport(Base):
    """The stored selection statistics of a sweep or a study, valid for one set of runs (``family_hash``)."""

    __tablename__ = "family_reports"

    report_key: Mapped[str] = mapped_column(Text, primary_key=True)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    study: Mapped[str] = mapped_column(
        Text, ForeignKey("studies.name", ondelete="CASCADE"), nullable=False
    )
    sweep_id: Mapped[str | None] = mapped_column(
        Text, ForeignKey("sweeps.sweep_id", ondelete="CASCADE"), nullable=True
    )
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    family_hash: Mapped[str] = mapped_column(Text, nullable=False)
    n_trials: Mapped[int] = mapped_column(Integer, nullable=False)
    report_json: Mapped[str] = mapped_column(Text, nullable=False)
    methodology_version: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    study_row: Mapped[Study] = relationship(back_populates="reports")
    sweep: Mapped[Sweep | None] = relationship(back_populates="reports")

    __table_args__ = (
        _ck(_hex64("report_key"), "report_key_hex64"),
        _ck(_in("scope", FamilyScope), "scope_enum"),
        _ck(
            f"(scope <> '{FamilyScope.SWEEP}' OR sweep_id IS NOT NULL)"
            f" AND (scope <> '{FamilyScope.STUDY}' OR sweep_id IS NULL)",
            "scope_coherence",
        ),
        _ck(_uint32("seed"), "seed_uint32"),
        _ck(_hex64("family_hash"), "family_hash_hex64"),
        _ck("n_trials >= 1", "n_trials_positive"),
        _ck("length(methodology_version) > 0", "methodology_version_nonempty"),
        _ck("created_at >= 0", "created_at_nonneg"),
        Index(None, "study"),
        Index(None, "sweep_id"),
    )


class InputDigest(Base):
    """What an input resolved to, keyed by a digest of its exact content and of the code that resolved it: a
    data file's ``data_hash`` (``kind = data_file``), a raw config's canonical config (``kind = config``).

    Facts about inputs, not about runs (no foreign key): they let an identical resubmission find its run without
    loading the data (:mod:`alphaforge.runs.resubmit`). A row is written once and never changes: the same
    digest always resolves to the same value.
    """

    __tablename__ = "input_digests"

    digest: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (
        _ck(_hex64("digest"), "digest_hex64"),
        _ck(_in("kind", InputKind), "kind_enum"),
        _ck("recorded_at >= 0", "recorded_at_nonneg"),
    )


MODELS = (
    Run, Trade, Equity, Validation, Metric, FeaturesCacheMeta, RunError, PhaseMetric,
    Study, Sweep, SweepPoint, FamilyReport, InputDigest,
)
