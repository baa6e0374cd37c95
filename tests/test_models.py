"""The domain model on real databases: every CHECK constraint, cascades, lazy-raise, uniqueness rules."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import CheckConstraint, func, insert, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.orm import Session

import alphaforge
from alphaforge.db.models import (
    MODELS,
    Base,
    Equity,
    FamilyReport,
    FeaturesCacheMeta,
    InputDigest,
    Metric,
    PhaseMetric,
    Run,
    RunError,
    Study,
    Sweep,
    SweepPoint,
    Trade,
    Validation,
)
from alphaforge.db.store import Store
from alphaforge.errors import DataInvalid, RunNotFound

H = "ab" * 32  # a valid 64-hex hash
H2 = "cd" * 32


def run_row(**over: Any) -> dict[str, Any]:
    row = dict(
        run_hash=H, created_at=1_700_000_000_000, updated_at=1_700_000_000_000, status="pending",
        config_json="{}", manifest_json="{}", data_hash=H, seed_root=42, db_version=1, bootstrap_seed=7,
        walk_forward_spec_json=None,
    )
    return row | over


def good_rows() -> dict[type, dict[str, Any]]:
    return {
        Trade: dict(run_hash=H, seq=0, ts=1, side="buy", qty=1.0, entry_price=10.0, exit_price=None,
                    cost_bps=1.5, borrow_cost=0.0, pnl=0.0, position_after=1.0),
        Equity: dict(run_hash=H, ts=1, equity=100.0, drawdown=0.0, realized_pnl=0.0, unrealized_pnl=0.0,
                     cost_drag=0.0),
        Validation: dict(run_hash=H, payload_json="{}", permutation_pvalue=0.5, bootstrap_sharpe_low=-1.0,
                         bootstrap_sharpe_high=1.0, bootstrap_cagr_low=-0.1, bootstrap_cagr_high=0.2,
                         bootstrap_method="hadj_bb", bootstrap_block_length=5, bootstrap_jitter=1,
                         bootstrap_fallback=0),
        Metric: dict(run_hash=H, key="sharpe", value="1.0", value_type="float", phase="backtest"),
        FeaturesCacheMeta: dict(meta_hash=H, spec_json="{}", built_at=1, rows=10, columns=2, digest=H2),
        RunError: dict(run_hash=H, ts=1, phase="load", error_code="DATA_INVALID", message="bad",
                       stack_hash=H2),
        PhaseMetric: dict(run_hash=H, phase="load", started_at=10, ended_at=15, duration_ms=5,
                          rows_processed=3, extra_json="{}"),
        Study: STUDY_ROW,
        Sweep: SWEEP_ROW,
        SweepPoint: dict(sweep_id=H2, point_index=0, params_json='{"strategy.params.fast":5}', run_hash=H,
                         skip_reason=None),
        FamilyReport: dict(report_key=H2, scope="sweep", study="s", sweep_id=H2, params_json="{}", seed=7,
                           family_hash=H, n_trials=4, report_json="{}", methodology_version="1",
                           created_at=1),
        InputDigest: dict(digest=H, kind="data_file", value=H2, recorded_at=1),
    }


STUDY_ROW = dict(name="s", data_hash=H, strategy="sma_cross", symbol="X", created_at=1)
SWEEP_ROW = dict(sweep_id=H2, study="s", data_hash=H, base_config_json="{}", grid_json="[]", n_points=4,
                 status="running", created_at=1, updated_at=1)


# (constraint name, model, bad override, good override) — the good override differs only in the checked fact.
CASES: list[tuple[str, type, dict[str, Any], dict[str, Any]]] = [
    ("ck_runs_status_enum", Run, {"status": "done"}, {"status": "completed"}),
    ("ck_runs_run_hash_hex64", Run, {"run_hash": "xyz"}, {"run_hash": "0" * 64}),
    ("ck_runs_run_hash_hex64", Run, {"run_hash": "AB" * 32}, {"run_hash": "ef" * 32}),
    ("ck_runs_data_hash_hex64", Run, {"data_hash": "g" * 64}, {"data_hash": "f" * 64}),
    ("ck_runs_seed_root_uint32", Run, {"seed_root": 2**32}, {"seed_root": 2**32 - 1}),
    ("ck_runs_seed_root_uint32", Run, {"seed_root": -1}, {"seed_root": 0}),
    ("ck_runs_bootstrap_seed_uint32", Run, {"bootstrap_seed": 2**32}, {"bootstrap_seed": 0}),
    ("ck_runs_created_at_nonneg", Run, {"created_at": -1, "updated_at": 0}, {"created_at": 0, "updated_at": 0}),
    ("ck_runs_updated_after_created", Run, {"updated_at": 1_600_000_000_000}, {"updated_at": 1_800_000_000_000}),
    ("ck_runs_db_version_positive", Run, {"db_version": 0}, {"db_version": 1}),
    ("ck_runs_heartbeat_at_nonneg", Run, {"heartbeat_at": -1}, {"heartbeat_at": 0}),
    ("ck_trades_side_enum", Trade, {"side": "hold"}, {"side": "flat"}),
    ("ck_trades_seq_nonneg", Trade, {"seq": -1}, {"seq": 3}),
    ("ck_trades_cost_bps_nonneg", Trade, {"cost_bps": -0.1}, {"cost_bps": 0.0}),
    ("ck_equity_drawdown_nonneg", Equity, {"drawdown": -0.01}, {"drawdown": 0.25}),
    ("ck_validation_bootstrap_method_enum", Validation,
     {"bootstrap_method": "stationary"}, {"bootstrap_method": "hadj_bb"}),
    ("ck_validation_bootstrap_fallback_bool", Validation, {"bootstrap_fallback": 2}, {"bootstrap_fallback": 1}),
    ("ck_validation_bootstrap_coherence", Validation,
     {"bootstrap_method": "simple", "bootstrap_block_length": 5, "bootstrap_jitter": None},
     {"bootstrap_method": "simple", "bootstrap_block_length": None, "bootstrap_jitter": None}),
    ("ck_validation_bootstrap_coherence", Validation,
     {"bootstrap_method": "simple", "bootstrap_block_length": None, "bootstrap_jitter": 1},
     {"bootstrap_method": "simple", "bootstrap_block_length": None, "bootstrap_jitter": None,
      "bootstrap_fallback": 1}),
    ("ck_validation_bootstrap_coherence", Validation,
     {"bootstrap_block_length": None}, {"bootstrap_block_length": 1}),
    ("ck_validation_bootstrap_coherence", Validation,
     {"bootstrap_block_length": 0}, {"bootstrap_block_length": 50}),
    ("ck_validation_bootstrap_jitter_nonneg", Validation, {"bootstrap_jitter": -1}, {"bootstrap_jitter": 0}),
    ("ck_validation_pvalue_unit_interval", Validation, {"permutation_pvalue": 1.5}, {"permutation_pvalue": 1.0}),
    ("ck_validation_pvalue_unit_interval", Validation, {"permutation_pvalue": -0.1}, {"permutation_pvalue": None}),
    ("ck_validation_sharpe_ci_ordered", Validation,
     {"bootstrap_sharpe_low": 2.0}, {"bootstrap_sharpe_low": 1.0}),
    ("ck_validation_sharpe_ci_ordered", Validation,
     {"bootstrap_sharpe_low": None}, {"bootstrap_sharpe_low": None, "bootstrap_sharpe_high": None}),
    ("ck_validation_cagr_ci_ordered", Validation, {"bootstrap_cagr_high": -0.2}, {"bootstrap_cagr_high": -0.1}),
    ("ck_metrics_value_type_enum", Metric, {"value_type": "decimal"}, {"value_type": "json"}),
    ("ck_metrics_key_nonempty", Metric, {"key": ""}, {"key": "k"}),
    ("ck_features_cache_meta_hash_hex64", FeaturesCacheMeta, {"meta_hash": "a" * 63}, {"meta_hash": "a" * 64}),
    ("ck_features_cache_digest_hex64", FeaturesCacheMeta, {"digest": "z" * 64}, {"digest": "9" * 64}),
    ("ck_features_cache_built_at_nonneg", FeaturesCacheMeta, {"built_at": -5}, {"built_at": 0}),
    ("ck_features_cache_rows_nonneg", FeaturesCacheMeta, {"rows": -1}, {"rows": 0}),
    ("ck_features_cache_columns_nonneg", FeaturesCacheMeta, {"columns": -1}, {"columns": 0}),
    ("ck_run_errors_ts_nonneg", RunError, {"ts": -1}, {"ts": 0}),
    ("ck_run_errors_error_code_nonempty", RunError, {"error_code": ""}, {"error_code": "X"}),
    ("ck_run_errors_stack_hash_hex64", RunError, {"stack_hash": "nothex"}, {"stack_hash": "1" * 64}),
    ("ck_phase_metrics_phase_nonempty", PhaseMetric, {"phase": ""}, {"phase": "p"}),
    ("ck_phase_metrics_started_at_nonneg", PhaseMetric,
     {"started_at": -1, "ended_at": None, "duration_ms": None},
     {"started_at": 0, "ended_at": None, "duration_ms": None}),
    ("ck_phase_metrics_ended_after_started", PhaseMetric,
     {"ended_at": 5, "duration_ms": -5}, {"ended_at": 20, "duration_ms": 10}),
    ("ck_phase_metrics_ended_after_started", PhaseMetric,
     {"ended_at": 20, "duration_ms": 3}, {"ended_at": 13, "duration_ms": 3}),
    ("ck_phase_metrics_ended_after_started", PhaseMetric,
     {"ended_at": None, "duration_ms": 3}, {"ended_at": None, "duration_ms": None}),
    ("ck_phase_metrics_rows_processed_nonneg", PhaseMetric, {"rows_processed": -1}, {"rows_processed": None}),
    ("ck_studies_name_nonempty", Study, {"name": ""}, {"name": "t"}),
    ("ck_studies_data_hash_hex64", Study, {"data_hash": "x"}, {"data_hash": H2}),
    ("ck_studies_strategy_nonempty", Study, {"strategy": ""}, {"strategy": "momentum"}),
    ("ck_studies_created_at_nonneg", Study, {"created_at": -1}, {"created_at": 0}),
    ("ck_sweeps_sweep_id_hex64", Sweep, {"sweep_id": "abc"}, {"sweep_id": "e" * 64}),
    ("ck_sweeps_data_hash_hex64", Sweep, {"data_hash": "A" * 64}, {"data_hash": "a" * 64}),
    ("ck_sweeps_status_enum", Sweep, {"status": "done"}, {"status": "completed"}),
    ("ck_sweeps_n_points_nonneg", Sweep, {"n_points": -1}, {"n_points": 0}),
    ("ck_sweeps_created_at_nonneg", Sweep, {"created_at": -1, "updated_at": 0}, {"created_at": 0, "updated_at": 0}),
    ("ck_sweeps_updated_after_created", Sweep, {"created_at": 5, "updated_at": 4}, {"created_at": 5, "updated_at": 5}),
    ("ck_sweep_points_point_index_nonneg", SweepPoint, {"point_index": -1}, {"point_index": 7}),
    ("ck_sweep_points_skipped_has_no_run", SweepPoint, {"skip_reason": "fast >= slow"},
     {"skip_reason": "fast >= slow", "run_hash": None}),
    ("ck_family_reports_report_key_hex64", FamilyReport, {"report_key": "k"}, {"report_key": "0" * 64}),
    ("ck_family_reports_scope_enum", FamilyReport, {"scope": "grid"}, {"scope": "sweep"}),
    ("ck_family_reports_scope_coherence", FamilyReport, {"scope": "study"}, {"scope": "study", "sweep_id": None}),
    ("ck_family_reports_scope_coherence", FamilyReport, {"sweep_id": None}, {"sweep_id": H2}),
    ("ck_family_reports_seed_uint32", FamilyReport, {"seed": 2**32}, {"seed": 2**32 - 1}),
    ("ck_family_reports_family_hash_hex64", FamilyReport, {"family_hash": ""}, {"family_hash": H2}),
    ("ck_family_reports_n_trials_positive", FamilyReport, {"n_trials": 0}, {"n_trials": 1}),
    ("ck_family_reports_methodology_version_nonempty", FamilyReport,
     {"methodology_version": ""}, {"methodology_version": "2"}),
    ("ck_family_reports_created_at_nonneg", FamilyReport, {"created_at": -1}, {"created_at": 0}),
    ("ck_input_digests_digest_hex64", InputDigest, {"digest": "AB" * 32}, {"digest": "ab" * 32}),
    ("ck_input_digests_kind_enum", InputDigest, {"kind": "file"}, {"kind": "config"}),
    ("ck_input_digests_recorded_at_nonneg", InputDigest, {"recorded_at": -1}, {"recorded_at": 0}),
]

#: parent rows each model needs before its own row (runs first, then the study, then the sweep)
PARENTS: dict[type, tuple[type, ...]] = {
    Run: (), FeaturesCacheMeta: (), Study: (), Sweep: (Study,), SweepPoint: (Run, Study, Sweep),
    FamilyReport: (Study, Sweep), InputDigest: (),
}


def _insert(session: Session, model: type, row: dict[str, Any]) -> None:
    for parent in PARENTS.get(model, (Run,)):
        session.execute(insert(parent).values(run_row() if parent is Run else good_rows()[parent]))
    session.execute(insert(model).values(row))


def _row(model: type, override: dict[str, Any]) -> dict[str, Any]:
    return (run_row() if model is Run else good_rows()[model]) | override


def test_every_check_constraint_is_named_and_covered() -> None:
    declared = {
        c.name for t in Base.metadata.tables.values() for c in t.constraints if isinstance(c, CheckConstraint)
    }
    assert all(isinstance(n, str) and n.startswith("ck_") for n in declared)
    assert declared == {name for name, *_ in CASES}


@pytest.mark.parametrize(("name", "model", "bad", "good"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_constraint_rejects_bad_and_accepts_good(
    store: Store, name: str, model: type, bad: dict[str, Any], good: dict[str, Any]
) -> None:
    with pytest.raises(DataInvalid) as info:  # the driver's IntegrityError, typed for every caller
        with store.session() as s:
            _insert(s, model, _row(model, bad))
    assert isinstance(info.value.__cause__, IntegrityError)
    assert info.value.context["constraint"] == name and name in str(info.value)
    with store.session() as s:
        _insert(s, model, _row(model, good))
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(model)) == 1


def test_public_names_and_tables() -> None:
    assert {m.__name__ for m in MODELS} == {
        "Run", "Trade", "Equity", "Validation", "Metric", "FeaturesCacheMeta", "RunError", "PhaseMetric",
        "Study", "Sweep", "SweepPoint", "FamilyReport", "InputDigest",
    }
    assert {m.__tablename__ for m in MODELS} == {
        "runs", "trades", "equity", "validation", "metrics", "features_cache", "run_errors", "phase_metrics",
        "studies", "sweeps", "sweep_points", "family_reports", "input_digests",
    }
    for m in MODELS:
        assert getattr(alphaforge, m.__name__) is m


def test_columns_match_the_data_model() -> None:
    spec = {
        "runs": "run_hash created_at updated_at status config_json manifest_json data_hash seed_root db_version"
                " bootstrap_seed walk_forward_spec_json",
        "trades": "run_hash ts side qty entry_price exit_price cost_bps borrow_cost pnl position_after",
        "equity": "run_hash ts equity drawdown realized_pnl unrealized_pnl cost_drag",
        "validation": "run_hash payload_json permutation_pvalue bootstrap_sharpe_low bootstrap_sharpe_high"
                      " bootstrap_cagr_low bootstrap_cagr_high bootstrap_method bootstrap_block_length"
                      " bootstrap_jitter bootstrap_fallback",
        "metrics": "run_hash key value value_type phase",
        "features_cache": "meta_hash spec_json built_at rows columns digest",
        "run_errors": "id run_hash ts phase error_code message stack_hash",
        "phase_metrics": "id run_hash phase started_at ended_at duration_ms rows_processed extra_json",
    }
    for table, cols in spec.items():
        assert set(cols.split()) <= set(Base.metadata.tables[table].columns.keys()), table
    t = Base.metadata.tables
    assert type(t["equity"].c.ts.type).__name__ == "BigInteger"
    assert type(t["trades"].c.qty.type).__name__ == "REAL"
    assert type(t["runs"].c.seed_root.type).__name__ == "BigInteger"
    assert t["validation"].c.bootstrap_block_length.nullable and t["validation"].c.bootstrap_jitter.nullable
    assert not t["metrics"].c.key.nullable and not t["metrics"].c.value.nullable


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_float32_columns_are_four_byte_real_on_postgres(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'equity'"
        ).all()
    types = dict(rows)
    assert types["equity"] == "real" and types["ts"] == "bigint"


def _populate(store: Store) -> None:
    rows = good_rows()
    with store.session() as s:
        s.execute(insert(Run).values(run_row()))
        for model in (Trade, Equity, Validation, Metric, RunError, PhaseMetric):
            s.execute(insert(model).values(rows[model]))


CHILDREN = (Trade, Equity, Validation, Metric, RunError, PhaseMetric)


def _child_counts(store: Store) -> list[int]:
    with store.session() as s:
        return [s.scalar(select(func.count()).select_from(m)) or 0 for m in CHILDREN]


def test_deleting_a_run_through_the_orm_removes_all_children(store: Store) -> None:
    _populate(store)
    assert _child_counts(store) == [1] * len(CHILDREN)
    with store.session() as s:
        s.delete(Run.find(s, H))
    assert _child_counts(store) == [0] * len(CHILDREN)


def test_deleting_a_run_in_sql_cascades(store: Store) -> None:
    _populate(store)
    with store.engine.begin() as conn:
        conn.execute(Run.__table__.delete())
    assert _child_counts(store) == [0] * len(CHILDREN)


def test_child_rows_need_an_existing_run(store: Store) -> None:
    with pytest.raises(RunNotFound, match="refers to a run that does not exist"):
        with store.session() as s:
            s.execute(insert(Equity).values(good_rows()[Equity] | {"run_hash": H2}))


def test_loading_high_volume_children_by_accident_raises(store: Store) -> None:
    _populate(store)
    with store.session() as s:
        run = Run.find(s, H)
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = run.trades
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = run.equity
        assert [m.key for m in run.metrics] == ["sharpe"]
        assert run.validation is not None and run.validation.bootstrap_block_length == 5
        assert [e.error_code for e in run.errors] == ["DATA_INVALID"]
        assert [p.phase for p in run.phase_metrics] == ["load"]


def _populate_family(store: Store) -> None:
    """A run, a study, a sweep with one point naming the run and one skipped point, and two reports."""
    with store.session() as s:
        _insert(s, SweepPoint, good_rows()[SweepPoint])
        s.execute(insert(SweepPoint).values(sweep_id=H2, point_index=1, params_json="{}", run_hash=None,
                                            skip_reason="fast >= slow"))
        s.execute(insert(FamilyReport).values(good_rows()[FamilyReport]))
        s.execute(insert(FamilyReport).values(good_rows()[FamilyReport] | {
            "report_key": "1" * 64, "scope": "study", "sweep_id": None}))


def _count(store: Store, model: type) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_family_relationships_navigate_from_run_study_and_sweep(store: Store) -> None:
    _populate_family(store)
    with store.session() as s:
        run = Run.find(s, H)
        assert [(p.sweep.sweep_id, p.point_index) for p in run.sweep_points] == [(H2, 0)]
        assert run.sweep_points[0].sweep.study_row.name == "s"
        study = s.get(Study, "s")
        assert study is not None and [w.sweep_id for w in study.sweeps] == [H2]
        assert sorted(r.scope for r in study.reports) == ["study", "sweep"]
        sweep = s.get(Sweep, H2)
        assert sweep is not None and [p.point_index for p in sweep.points] == [0, 1]
        assert sweep.points[1].run is None and [r.scope for r in sweep.reports] == ["sweep"]


def test_deleting_a_run_keeps_its_sweep_point_and_clears_the_reference(store: Store) -> None:
    _populate_family(store)
    with store.engine.begin() as conn:
        conn.execute(Run.__table__.delete())
    with store.session() as s:
        points = s.scalars(select(SweepPoint).order_by(SweepPoint.point_index)).all()
        assert [(p.point_index, p.run_hash) for p in points] == [(0, None), (1, None)]


def test_deleting_a_study_cascades_to_its_sweeps_points_and_reports(store: Store) -> None:
    _populate_family(store)
    with store.engine.begin() as conn:
        conn.execute(Study.__table__.delete())
    assert [_count(store, m) for m in (Sweep, SweepPoint, FamilyReport)] == [0, 0, 0]
    assert _count(store, Run) == 1  # runs are not owned by a study


def test_deleting_a_sweep_through_the_orm_removes_its_points_and_sweep_report(store: Store) -> None:
    _populate_family(store)
    with store.session() as s:
        sweep = s.get(Sweep, H2)
        assert sweep is not None
        s.delete(sweep)
    assert [_count(store, m) for m in (Sweep, SweepPoint, FamilyReport, Study)] == [0, 0, 1, 1]


def test_run_find_missing_raises_typed_error(store: Store) -> None:
    with store.session() as s:
        with pytest.raises(alphaforge.errors.RunNotFound):
            Run.find(s, H2)


def test_metrics_unique_per_run_key_phase_with_null_phase(store: Store) -> None:
    base = good_rows()[Metric]
    with store.session() as s:
        s.execute(insert(Run).values(run_row()))
        s.execute(insert(Metric).values(base | {"phase": None}))
        s.execute(insert(Metric).values(base | {"phase": "validation"}))
    for phase in (None, "validation"):
        with pytest.raises(DataInvalid, match="unique constraint"):
            with store.session() as s:
                s.execute(insert(Metric).values(base | {"phase": phase, "value": "2.0"}))


def test_validation_at_most_one_row_per_run(store: Store) -> None:
    with store.session() as s:
        s.execute(insert(Run).values(run_row()))
        s.execute(insert(Validation).values(good_rows()[Validation]))
    with pytest.raises(DataInvalid, match="unique constraint"):
        with store.session() as s:
            s.execute(insert(Validation).values(good_rows()[Validation]))


def test_trades_and_equity_have_run_hash_ts_indexes() -> None:
    t = Base.metadata.tables
    trade_ix = {tuple(c.name for c in ix.columns) for ix in t["trades"].indexes}
    assert ("run_hash", "ts") in trade_ix
    assert [c.name for c in t["equity"].primary_key.columns] == ["run_hash", "ts"]
