"""Read-only queries: runs as plain data (listings, full details, stored outcomes, exports).

Used by ``alphaforge runs list/show/export/plot``, ``verify``, the sweep planner and the pipeline's reuse path.
Nothing here constructs the pipeline or reads execution settings (``$ALPHAFORGE_STALE_AFTER_S`` and friends),
so a read never fails on a setting that only matters to a worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alphaforge.db.models import Metric, PhaseMetric, Run, RunError, Sweep, SweepPoint
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus, values
from alphaforge.errors import ConfigInvalid
from alphaforge.hashing import canonical_json, sha256_file
from alphaforge.methodology import UNVERSIONED, recorded_methodology
from alphaforge.runs.service import RunRecord, RunService


@dataclass(frozen=True)
class RunOutcome:
    """The result of one submission, as plain data (what `alphaforge run --json` prints)."""

    run: RunRecord
    reused: bool
    metrics: dict[str, Any]
    validation: dict[str, Any] | None
    anomaly_counters: dict[str, int]
    phases: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_hash": self.run.run_hash, "status": self.run.status, "reused": self.reused,
            "data_hash": self.run.data_hash, "seed_root": self.run.seed_root, "metrics": self.metrics,
            "validation": self.validation, "anomaly_counters": self.anomaly_counters, "phases": self.phases,
        }


def default_cache_dir(store: Store) -> Path:
    """Where feature parquet files go: ``$ALPHAFORGE_CACHE_DIR``, else beside a SQLite database file,
    else ``./alphaforge_cache``."""
    env = os.environ.get("ALPHAFORGE_CACHE_DIR")
    if env:
        return Path(env)
    database = store.engine.url.database
    if store.dialect == "sqlite" and database and database != ":memory:":
        return Path(database).resolve().parent / "alphaforge_cache"
    return Path("alphaforge_cache").resolve()


def stored_outcome(store: Store, run_hash: str, *, reused: bool) -> RunOutcome:
    """The outcome of a run as stored in the database (what reuse returns)."""
    return _outcome(store, RunService(store).get(run_hash), store.read_all_metrics(run_hash), reused=reused)


def _outcome(store: Store, run: RunRecord, metrics: dict[str | None, dict[str, Any]], *,
             reused: bool) -> RunOutcome:
    """:func:`stored_outcome` from the run and its metrics already read."""
    run_hash = run.run_hash
    validation = store.read_validation(run_hash)
    load = metrics.get("load", {})
    anomaly = {k: int(v) for k, v in run.manifest.get("anomaly_counters", load).items()}
    if validation is not None:
        validation = {**{k: v for k, v in validation.items() if k not in ("run_hash", "payload_json")},
                      "payload": json.loads(validation["payload_json"])}
    return RunOutcome(
        run=run, reused=reused, metrics=metrics.get("backtest", {}), validation=validation,
        anomaly_counters=anomaly, phases=phase_durations(store, run_hash),
    )


def phase_durations(store: Store, run_hash: str) -> dict[str, int | None]:
    with store.read_session() as s:
        rows = s.execute(
            select(PhaseMetric.phase, PhaseMetric.duration_ms).where(PhaseMetric.run_hash == run_hash)
            .order_by(PhaseMetric.id)
        ).all()
    return {phase: duration for phase, duration in rows}


def list_runs(store: Store, *, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The most recently updated runs, newest first, with their headline metrics."""
    if status is not None and status not in values(RunStatus):
        raise ConfigInvalid(f"--status {status!r}: expected one of {', '.join(values(RunStatus))}")
    if limit < 1:
        raise ConfigInvalid(f"--limit {limit}: expected a positive number")
    with store.read_session() as s:
        stmt = select(Run).order_by(Run.updated_at.desc(), Run.run_hash).limit(limit)
        if status is not None:
            stmt = stmt.where(Run.status == status)
        runs = list(s.scalars(stmt))
        hashes = [r.run_hash for r in runs]
        headline = {(h, k): v for h, k, v in s.execute(
            select(Metric.run_hash, Metric.key, Metric.value).where(
                Metric.run_hash.in_(hashes), Metric.phase == "backtest", Metric.key.in_(("sharpe", "cagr"))
            )
        )}
        out = []
        for r in runs:
            config = json.loads(r.config_json)
            out.append({
                "run_hash": r.run_hash, "status": r.status, "created_at": r.created_at,
                "updated_at": r.updated_at, "symbol": config.get("symbol"),
                "strategy": config.get("strategy", {}).get("name"),
                "sharpe": _num(headline.get((r.run_hash, "sharpe"))),
                "cagr": _num(headline.get((r.run_hash, "cagr"))),
            })
        return out


def _num(text: str | None) -> float | None:
    return None if text is None else float(text)


def show_run(store: Store, run_id: str) -> dict[str, Any]:
    """Everything about one run (a unique run_hash prefix is accepted)."""
    service = RunService(store)
    run_hash = service.resolve(run_id)
    run, metrics = service.get(run_hash), store.read_all_metrics(run_hash)
    outcome = _outcome(store, run, metrics, reused=False).to_json()
    del outcome["reused"]
    with store.read_session() as s:
        errors = [
            {"ts": e.ts, "phase": e.phase, "error_code": e.error_code, "message": e.message,
             "stack_hash": e.stack_hash}
            for e in s.scalars(select(RunError).where(RunError.run_hash == run_hash).order_by(RunError.id))
        ]
        memberships = [
            {"sweep_id": sweep_id, "study": study, "point_index": index}
            for sweep_id, study, index in s.execute(
                select(SweepPoint.sweep_id, Sweep.study, SweepPoint.point_index)
                .join(Sweep, Sweep.sweep_id == SweepPoint.sweep_id)
                .where(SweepPoint.run_hash == run_hash).order_by(Sweep.created_at, SweepPoint.point_index)
            )
        ]
    return {
        **outcome, "bars_per_year": bars_per_year_used(run.config, run.manifest, metrics.get("load", {})),
        "methodology": recorded_methodology(run.manifest) or UNVERSIONED,
        "created_at": run.created_at, "updated_at": run.updated_at, "config": run.config,
        "manifest": run.manifest, "walk_forward_spec": run.walk_forward_spec, "errors": errors,
        "all_metrics": {str(k): v for k, v in metrics.items()}, "sweeps": memberships,
    }


def bars_per_year_used(config: dict[str, Any], manifest: dict[str, Any],
                       load_metrics: dict[str, Any]) -> dict[str, Any]:
    """The bars_per_year a run used and where it came from: ``{"value", "source"}`` with source
    ``"configured"`` (``execution.bars_per_year`` set) or ``"inferred"`` (from the data's calendar; value
    ``None`` until the run has finished)."""
    configured = (config.get("execution") or {}).get("bars_per_year")
    value = manifest.get("bars_per_year", load_metrics.get("bars_per_year", configured))
    return {"value": None if value is None else float(value),
            "source": "inferred" if configured is None else "configured"}


def export_run(store: Store, run_id: str, out_dir: str | Path) -> dict[str, Any]:
    """Write trades.parquet, equity.parquet and manifest.json (with their sha256) into ``out_dir``."""
    service = RunService(store)
    run_hash = service.resolve(run_id)
    run = service.get(run_hash)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, frame in (("trades", store.read_trades(run_hash)), ("equity", store.read_equity(run_hash))):
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        files[path.name] = {"sha256": sha256_file(path), "rows": len(frame)}
    manifest = {"run_hash": run_hash, "status": run.status, "data_hash": run.data_hash, "files": files,
                "run_manifest": run.manifest}
    (out / "manifest.json").write_text(canonical_json(manifest) + "\n", encoding="utf-8")
    return manifest
