"""The family report of a sweep or a study: what the best of its trials is worth once the search is counted.

``alphaforge sweep report SWEEP_ID|STUDY`` (a sweep id, a unique prefix of one, or a study name):

* **Members** — every distinct *completed* run answering a point of the sweep (or of any sweep of the study),
  in ``run_hash`` order; ``n_trials`` is their number (a failed or skipped point has no returns to test).
* **Returns** — the ``T x N`` matrix of per-bar strategy returns, read from each run's stored equity and
  derived exactly as the engine derives returns from equity
  (:func:`alphaforge.backtest.engine.returns_from_equity`: ``r[0] = 0``, ``r[s] = e[s] / e[s-1] - 1``).
* **Benchmark** ``buy_and_hold`` — the registered ``buy_and_hold`` strategy (fully invested on every bar)
  simulated by the engine on the study's dataset with the execution settings (costs, initial equity, bars per
  year) of the member with the highest stored Sharpe (a sweep's points normally share them), its per-bar
  returns derived from its float32 equity by the same rule. The dataset is the data file the runs recorded
  (``manifest.data_source``) or ``--data``; it must hash to the study's ``data_hash``.
* **Best** — the member whose returns have the highest per-bar Sharpe (ties: the lowest ``run_hash``; the
  stored ``sharpe`` metric ranks the same way up to float32 rounding of the equity); ``sharpe`` is its stored
  (annualized) ``sharpe`` metric and ``params`` those of the first point it answers.
* The statistics are :func:`alphaforge.selection.family_statistics` of the matrix and the benchmark:
* **PSR / DSR / MinTRL** (:func:`alphaforge.selection.deflated_sharpe`): per-bar Sharpe, skewness and
  non-excess kurtosis of the best member's returns, N = ``n_trials`` and the variance of the members' per-bar
  Sharpe ratios; ``min_trl_years`` = MinTRL in bars / bars per year.
* **PBO** (:func:`alphaforge.selection.probability_of_backtest_overfitting`) over the matrix with ``--blocks``
  S (default 16).
* **SPA, Reality Check, StepM** (:func:`alphaforge.selection.spa_and_stepm`): the members against the
  benchmark, ``--reps`` stationary-bootstrap repetitions (default 1000), ``--alpha`` for StepM (default 0.05),
  mean block length = the project's rule (:func:`alphaforge.validation.block_length.optimal_block_length`,
  stationary) applied to the best member's differential ``r_best - r_benchmark``.
* **Seed** — ``seed_from_hex(hash_obj({"study": <study name>}))``: a uint32 fixed by the study's name, so a
  report is reproducible and the sweep and study reports of one study draw the same bootstrap.

Stored in ``family_reports`` under ``report_key = hash_obj({"scope", "scope_key", "params"})`` with
``family_hash = hash_obj(sorted member run_hashes)``: a report is recomputed only when the family (its set of
runs) or :data:`METHODOLOGY_VERSION` changed; otherwise the stored document is returned as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from alphaforge.backtest import get_strategy, run_backtest
from alphaforge.backtest.engine import returns_from_equity
from alphaforge.config import load_config
from alphaforge.data import Dataset, load_ohlcv
from alphaforge.db.models import Equity, FamilyReport, Metric, Run, Study, Sweep, SweepPoint
from alphaforge.db.store import Store
from alphaforge.db.upsert import upsert
from alphaforge.enums import FamilyScope, RunStatus
from alphaforge.errors import ConfigInvalid, DataInvalid, IntegrityMismatch, RunNotFound
from alphaforge.hashing import canonical_json, hash_obj, seed_from_hex
from alphaforge.methodology import FAMILY_METHODOLOGY
from alphaforge.numeric import finite_number
from alphaforge.runs.family_params import ReportParams
from alphaforge.runs.pipeline import execution_params
from alphaforge.runs.service import epoch_ms

#: The family statistics' methodology (the one registry: :mod:`alphaforge.methodology`).
METHODOLOGY_VERSION = FAMILY_METHODOLOGY


@dataclass(frozen=True)
class Member:
    run_hash: str
    params: dict[str, Any]
    sharpe: float


@dataclass(frozen=True)
class Family:
    """A sweep or a study and its completed runs."""

    scope: str  # FamilyScope
    scope_key: str  # the sweep_id, or the study name
    study: str
    data_hash: str
    sweep_ids: list[str]
    members: list[Member]  # run_hash order

    @property
    def family_hash(self) -> str:
        """sha256 of the canonical JSON of the sorted member run_hashes."""
        return hash_obj(sorted(m.run_hash for m in self.members))


@dataclass(frozen=True)
class StoredReport:
    """A family report as returned to the caller."""

    report: dict[str, Any]
    reused: bool  # the stored report was returned without recomputing
    family_hash: str
    seed: int
    params: ReportParams


def family_seed(study: str) -> int:
    """The bootstrap seed of every report of ``study`` (see the module docstring)."""
    return seed_from_hex(hash_obj({"study": study}))


# --------------------------------------------------------------------------------------------- resolve


def resolve_family(store: Store, key: str) -> Family:
    """The sweep with this id (or unique id prefix), else the study with this name; CONFIG_INVALID otherwise."""
    key = key.strip()
    if not key:
        raise ConfigInvalid("sweep report: give a sweep id or a study name", field="sweep")
    with store.read_session() as s:
        study = s.get(Study, key)
        sweeps: list[Sweep] = []
        if study is not None:
            scope, scope_key, name = FamilyScope.STUDY, key, study.name
            sweeps = list(s.scalars(select(Sweep).where(Sweep.study == key).order_by(Sweep.created_at, Sweep.sweep_id)))
        else:
            found = list(s.scalars(select(Sweep).where(Sweep.sweep_id.startswith(key.lower(), autoescape=True))
                                   .limit(2)))
            if len(found) != 1:
                what = "is ambiguous (give more characters)" if found else "names no sweep and no study"
                raise RunNotFound(f"sweep report {key!r}: {what}; list studies and sweeps with "
                                  "`alphaforge sweep report --list`", key=key)
            sweeps = found
            scope, scope_key, name = FamilyScope.SWEEP, found[0].sweep_id, found[0].study
            study = s.get(Study, name)
        assert study is not None
        ids = [w.sweep_id for w in sweeps]
        rows = s.execute(
            select(SweepPoint.run_hash, SweepPoint.params_json, Metric.value)
            .join(Run, Run.run_hash == SweepPoint.run_hash)
            .join(Metric, (Metric.run_hash == Run.run_hash) & (Metric.phase == "backtest") & (Metric.key == "sharpe"))
            .where(SweepPoint.sweep_id.in_(ids), Run.status == RunStatus.COMPLETED)
            .order_by(SweepPoint.sweep_id, SweepPoint.point_index)
        ).all()
    members: dict[str, Member] = {}
    for run_hash, params_json, sharpe in rows:
        if run_hash is not None and run_hash not in members:
            members[run_hash] = Member(run_hash, json.loads(params_json), float(sharpe))
    return Family(str(scope), scope_key, name, study.data_hash, ids, [members[h] for h in sorted(members)])


def list_families(store: Store) -> list[dict[str, Any]]:
    """Every study with its sweeps (id, points, status), oldest first."""
    with store.read_session() as s:
        studies = list(s.scalars(select(Study).order_by(Study.created_at, Study.name)))
        sweeps = list(s.scalars(select(Sweep).order_by(Sweep.created_at, Sweep.sweep_id)))
    return [{"study": st.name, "strategy": st.strategy, "symbol": st.symbol, "data_hash": st.data_hash,
             "sweeps": [{"sweep_id": w.sweep_id, "n_points": w.n_points, "status": w.status}
                        for w in sweeps if w.study == st.name]} for st in studies]


# --------------------------------------------------------------------------------------------- inputs


def returns_matrix(store: Store, run_hashes: list[str], n_bars: int) -> np.ndarray:
    """``T x N`` per-bar returns of the runs' stored equity (columns in ``run_hashes`` order)."""
    out = np.empty((n_bars, len(run_hashes)), dtype=np.float64)
    column = {h: j for j, h in enumerate(run_hashes)}
    with store.read_connection() as conn:
        for start in range(0, len(run_hashes), READ_CHUNK_RUNS):
            chunk = sorted(run_hashes[start:start + READ_CHUNK_RUNS])
            values = _equity_values(conn, chunk)
            if len(values) != n_bars * len(chunk):
                counts = dict(conn.execute(select(Equity.run_hash, func.count()).where(Equity.run_hash.in_(chunk))
                                           .group_by(Equity.run_hash)).all())
                bad = next(h for h in chunk if counts.get(h, 0) != n_bars)
                raise IntegrityMismatch(f"run {bad[:12]}: {counts.get(bad, 0)} equity rows stored, {n_bars} bars in "
                                        "the study's dataset; check it with `alphaforge verify`", run_hash=bad)
            for k, run_hash in enumerate(chunk):
                out[:, column[run_hash]] = returns_from_equity(values[k * n_bars:(k + 1) * n_bars])
    return out


#: Runs per equity query (bounds the IN list and the rows held at once).
READ_CHUNK_RUNS = 200


def _equity_values(conn: Any, run_hashes: list[str]) -> np.ndarray:
    """The ``equity`` column of the runs, ordered by (run_hash, ts), through the driver's cursor (millions of
    one-float rows would spend most of their time in SQLAlchemy's result processing otherwise), as the exact
    stored float32 values."""
    stmt = (select(Equity.equity).where(Equity.run_hash.in_(run_hashes))
            .order_by(Equity.run_hash, Equity.ts))
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    values = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
    # REAL is float32: PostgreSQL's driver gives its shortest decimal text as a double, SQLite the exact value;
    # both become the stored float32 exactly (as the bulk reads give it)
    return values.astype(np.float32).astype(np.float64)


def load_study_data(store: Store, family: Family, data_path: str | None) -> Dataset:
    """The study's dataset: ``data_path``, else the data file its runs recorded; it must hash to the study's."""
    if data_path is None:
        with store.read_session() as s:
            manifest = s.scalar(select(Run.manifest_json).where(Run.run_hash == family.members[0].run_hash))
        data_path = json.loads(manifest or "{}").get("data_source")
        if not data_path:
            raise ConfigInvalid("sweep report: the runs do not record their data file; pass --data FILE",
                                field="data")
    try:
        dataset = load_ohlcv(data_path)
    except (OSError, ConfigInvalid, DataInvalid) as exc:
        raise ConfigInvalid(f"sweep report: cannot read the study's data file {data_path} ({exc}); pass --data "
                            "FILE", field="data") from exc
    if dataset.data_hash != family.data_hash:
        raise ConfigInvalid(f"sweep report: {data_path} hashes to {dataset.data_hash[:12]}…, the study {family.study!r}"
                            f" is on {family.data_hash[:12]}…; pass the study's data with --data FILE", field="data")
    return dataset


def benchmark_returns(store: Store, dataset: Dataset, run_hash: str) -> tuple[np.ndarray, float]:
    """Buy-and-hold per-bar returns under the execution of run ``run_hash`` and that run's bars per year."""
    with store.read_session() as s:
        config_json = s.scalar(select(Run.config_json).where(Run.run_hash == run_hash))
    config = load_config(json.loads(config_json or "{}"))
    execution = execution_params(config, dataset)
    exposure = get_strategy("buy_and_hold").exposure({"close": dataset.frame["close"].to_numpy()}, {},
                                                     execution.allow_short)
    result = run_backtest(dataset.frame, exposure, execution)
    return returns_from_equity(result.equity["equity"].to_numpy()), execution.resolved_bars_per_year


# --------------------------------------------------------------------------------------------- the report


def best_member(members: list[Member]) -> int:
    """The position of the member with the highest stored Sharpe (ties: the lowest run_hash): whose execution
    settings the benchmark uses."""
    return min(range(len(members)), key=lambda j: (-members[j].sharpe, members[j].run_hash))


def compute_report(family: Family, returns: np.ndarray, benchmark: np.ndarray, bars_per_year: float,
                   params: ReportParams, seed: int) -> dict[str, Any]:
    """The report document (the ``--json`` of ``sweep report``) from the family's returns
    (:func:`alphaforge.selection.family_statistics`)."""
    from alphaforge.selection import family_statistics  # scipy: only when a report is computed

    members = family.members
    stats = family_statistics(returns, benchmark, bars_per_year=bars_per_year, seed=seed, reps=params.reps,
                              n_blocks=params.n_blocks, alpha=params.alpha)
    best, dsr, pbo, spa = members[stats.best_index], stats.deflated, stats.pbo, stats.spa
    # JSON has no inf/NaN: finite_number makes them null (e.g. MinTRL when the best Sharpe is not above SR0)
    return {
        "study": family.study, "sweep_ids": family.sweep_ids, "n_trials": stats.n_trials,
        "best": {"run_hash": best.run_hash, "params": best.params, "sharpe": best.sharpe},
        "psr": finite_number(dsr.psr), "dsr": finite_number(dsr.dsr),
        "min_trl_years": finite_number(dsr.min_trl_years),
        "pbo": {"value": finite_number(pbo.value), "n_splits": pbo.n_splits,
                "logit_mean": finite_number(pbo.logit_mean),
                "degradation_slope": finite_number(pbo.degradation_slope), "informative": pbo.informative,
                "note": pbo.note},
        "spa": {"benchmark": params.benchmark, "pvalue_lower": finite_number(spa.pvalue_lower),
                "pvalue_consistent": finite_number(spa.pvalue_consistent),
                "pvalue_upper": finite_number(spa.pvalue_upper),
                "reality_check_pvalue": finite_number(spa.reality_check_pvalue)},
        "stepm": {"alpha": params.alpha, "significant": [members[j].run_hash for j in stats.stepm.significant]},
    }


def report_key(family: Family, params: ReportParams) -> str:
    return hash_obj({"scope": family.scope, "scope_key": family.scope_key, "params": params.to_json()})


def family_report(store: Store, key: str, params: ReportParams | None = None, *,
                  data_path: str | None = None) -> StoredReport:
    """The stored report of the sweep or study ``key`` (computed and stored when missing or out of date)."""
    params = params or ReportParams()
    family = resolve_family(store, key)
    if len(family.members) < 2:
        raise ConfigInvalid(f"sweep report {key!r}: {len(family.members)} completed configuration(s); the family "
                            "statistics need at least 2 (run a sweep with more points)", field="sweep")
    if params.n_blocks < 4 or params.n_blocks % 2:
        raise ConfigInvalid(f"--blocks {params.n_blocks}: PBO needs an even number of blocks >= 4", field="blocks")
    seed, fhash, rkey = family_seed(family.study), family.family_hash, report_key(family, params)
    with store.read_session() as s:
        stored = s.get(FamilyReport, rkey)
        if stored is not None and stored.family_hash == fhash and stored.methodology_version == METHODOLOGY_VERSION:
            return StoredReport(json.loads(stored.report_json), True, fhash, seed, params)
    dataset = load_study_data(store, family, data_path)
    best = family.members[best_member(family.members)]
    benchmark, bars_per_year = benchmark_returns(store, dataset, best.run_hash)
    returns = returns_matrix(store, [m.run_hash for m in family.members], dataset.n_bars)
    report = compute_report(family, returns, benchmark, bars_per_year, params, seed)
    with store.session() as s:
        upsert(s, FamilyReport.__table__, [{  # type: ignore[arg-type]
            "report_key": rkey, "scope": family.scope, "study": family.study,
            "sweep_id": family.scope_key if family.scope == FamilyScope.SWEEP else None,
            "params_json": canonical_json(params.to_json()), "seed": seed, "family_hash": fhash,
            "n_trials": len(family.members), "report_json": canonical_json(report),
            "methodology_version": METHODOLOGY_VERSION, "created_at": epoch_ms(),
        }], ["report_key"])
    return StoredReport(report, False, fhash, seed, params)


def verdict(report: dict[str, Any]) -> str:
    """One line: does the best point survive the search that found it?"""
    dsr, pbo, spa = report["dsr"], report["pbo"]["value"], report["spa"]["pvalue_consistent"]
    n_sig = len(report["stepm"]["significant"])
    alpha = report["stepm"]["alpha"]
    beats = spa is not None and spa < alpha
    deflated = dsr is not None and dsr >= 0.95
    overfit = pbo is not None and pbo >= 0.5
    if beats and deflated and not overfit:
        return (f"likely genuine: the best of {report['n_trials']} trials survives deflation (DSR {dsr:.3f}), "
                f"beats the benchmark (SPA p {spa:.3f}, {n_sig} StepM point(s)), PBO {pbo:.2f}")
    reasons = []
    if not deflated:
        reasons.append(f"DSR {dsr:.3f} < 0.95" if dsr is not None else "DSR undefined")
    if not beats:
        reasons.append(f"SPA p {spa:.3f} >= {alpha:g}" if spa is not None else "SPA undefined")
    if overfit:
        reasons.append(f"PBO {pbo:.2f} >= 0.5")
    return f"likely selection luck: the best of {report['n_trials']} trials does not hold up ({'; '.join(reasons)})"
