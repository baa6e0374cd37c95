"""Sweeps and studies for their pages: the leaderboard, a heatmap over two grid parameters, family statistics.

* Points: every grid point with its params, its run's status, backtest metrics and permutation p-value (a point
  skipped as invalid shows its ``skip_reason``; one whose run was deleted has no run).
* Leaderboard: the points with a run, by the chosen metric, best first (NULLs last).
* Heatmap: cells over two chosen params (default: the first two grid axes); a cell's value is the chosen
  metric of its point, or the best (highest) of them when more axes map several points to one cell.
* Family statistics: the newest ``family_reports`` row of the scope (written by ``sweep report``), shown as
  stored; when there is none the page says so and shows the points alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from alphaforge.db.models import FamilyReport, Metric, Run, Study, Sweep, SweepPoint, Validation
from alphaforge.db.store import Store
from alphaforge.enums import FamilyScope
from alphaforge.errors import AlphaForgeError
from alphaforge.ui.params import QueryInvalid, name_param
from alphaforge.ui.sql import METRICS_PHASE, PVALUE

DEFAULT_METRIC = "sharpe"


class SweepNotFound(AlphaForgeError):
    """No sweep (or study) by that id or name (HTTP 404)."""

    error_code: ClassVar[str] = "SWEEP_NOT_FOUND"
    exit_code: ClassVar[int] = 2


@dataclass(frozen=True)
class View:
    """What the sweep/study page shows: the metric ranking and colouring it, and the heatmap's axes."""

    metric: str = DEFAULT_METRIC
    x: str | None = None
    y: str | None = None

    def as_params(self) -> dict[str, str]:
        out = {"metric": self.metric}
        out.update({k: v for k, v in (("x", self.x), ("y", self.y)) if v})
        return out


def view_params(params: Mapping[str, str]) -> View:
    """``metric``, ``x`` and ``y`` (param keys are dotted names: ``strategy.params.fast``)."""
    axes = {k: params[k].strip() for k in ("x", "y") if (params.get(k) or "").strip()}
    for k, v in axes.items():
        if len(v) > 200 or not all(part.isidentifier() for part in v.split(".")):
            raise QueryInvalid(f"{k}={v[:40]!r}: expected a grid parameter such as strategy.params.fast", param=k)
    return View(metric=name_param(params, "metric", DEFAULT_METRIC), x=axes.get("x"), y=axes.get("y"))


def run_hashes_of_study(study: str) -> Select[Any]:
    """The run_hashes of every point of every sweep of ``study`` (a subquery for the runs listing)."""
    return (select(SweepPoint.run_hash).join(Sweep, Sweep.sweep_id == SweepPoint.sweep_id)
            .where(Sweep.study == study, SweepPoint.run_hash.is_not(None)))


def _points(session: Session, where: Any) -> list[dict[str, Any]]:
    rows = session.execute(
        select(SweepPoint.sweep_id, SweepPoint.point_index, SweepPoint.params_json, SweepPoint.run_hash,
               SweepPoint.skip_reason, Run.status, Validation.permutation_pvalue)
        .outerjoin(Run, Run.run_hash == SweepPoint.run_hash)
        .outerjoin(Validation, Validation.run_hash == SweepPoint.run_hash)
        .where(where).order_by(SweepPoint.sweep_id, SweepPoint.point_index)
    ).all()
    metrics: dict[str, dict[str, float]] = {}
    for h, k, v in session.execute(
        select(Metric.run_hash, Metric.key, Metric.value)
        .join(SweepPoint, SweepPoint.run_hash == Metric.run_hash)
        .where(where, Metric.phase == METRICS_PHASE, Metric.value_type.in_(("int", "float")))
    ):
        metrics.setdefault(h, {})[k] = float(v)
    return [
        {"sweep_id": sid, "point_index": idx, "params": json.loads(params), "run_hash": h, "skip_reason": skip,
         "status": status, "pvalue": pvalue, "metrics": metrics.get(h, {}) if h else {}}
        for sid, idx, params, h, skip, status, pvalue in rows
    ]


def _value(point: dict[str, Any], metric: str) -> float | None:
    return point["pvalue"] if metric == PVALUE else point["metrics"].get(metric)


def leaderboard(points: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Points with a run, best first by ``metric`` (highest; lowest for ``pvalue``), missing values last."""
    ranked = [p for p in points if p["run_hash"]]
    sign = 1.0 if metric == PVALUE else -1.0
    return sorted(ranked, key=lambda p: (_value(p, metric) is None, sign * (_value(p, metric) or 0.0),
                                         p["sweep_id"], p["point_index"]))


def heatmap(points: list[dict[str, Any]], keys: list[str], view: View) -> dict[str, Any] | None:
    """Cells over ``view.x`` × ``view.y`` (default the first two of ``keys``); ``None`` with fewer than two."""
    x, y = view.x or (keys[0] if keys else None), view.y or (keys[1] if len(keys) > 1 else None)
    if x is None or y is None:
        return None
    for axis, key in (("x", x), ("y", y)):
        if key not in keys:
            raise QueryInvalid(f"{axis}={key!r}: not a grid parameter here (one of {', '.join(keys)})", param=axis)
    xs = sorted({json.dumps(p["params"].get(x)) for p in points}, key=_axis_order)
    ys = sorted({json.dumps(p["params"].get(y)) for p in points}, key=_axis_order)
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for p in points:
        v = _value(p, view.metric)
        if v is None:
            continue
        i, j = ys.index(json.dumps(p["params"].get(y))), xs.index(json.dumps(p["params"].get(x)))
        better = z[i][j] is None or (v < z[i][j] if view.metric == PVALUE else v > z[i][j])  # type: ignore[operator]
        if better:
            z[i][j] = v
    return {"x": x, "y": y, "metric": view.metric, "x_values": [json.loads(v) for v in xs],
            "y_values": [json.loads(v) for v in ys], "z": z}


def _axis_order(encoded: str) -> tuple[int, Any]:
    value = json.loads(encoded)
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (1, encoded)


def _report(session: Session, scope: str, **where: Any) -> dict[str, Any] | None:
    row = session.scalars(
        select(FamilyReport).filter_by(scope=scope, **where).order_by(FamilyReport.created_at.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return {"report_key": row.report_key, "n_trials": row.n_trials, "methodology_version": row.methodology_version,
            "created_at": row.created_at, "params": json.loads(row.params_json), "report": json.loads(row.report_json)}


def _keys(points: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for p in points:
        seen.update(dict.fromkeys(p["params"]))
    return list(seen)


def _find_sweep(session: Session, sweep_id: str) -> Sweep:
    sweep_id = sweep_id.strip().lower()
    matches = list(session.scalars(
        select(Sweep).where(Sweep.sweep_id.startswith(sweep_id, autoescape=True)).limit(2))) if sweep_id else []
    if len(matches) != 1:
        what = "matches several sweeps: give more characters" if matches else "is not a sweep"
        raise SweepNotFound(f"sweep {sweep_id[:64]!r} {what}", sweep_id=sweep_id[:64])
    return matches[0]


def sweep_view(store: Store, sweep_id: str, view: View) -> dict[str, Any]:
    with store.read_session() as s:
        sweep = _find_sweep(s, sweep_id)
        points = _points(s, SweepPoint.sweep_id == sweep.sweep_id)
        report = _report(s, FamilyScope.SWEEP.value, sweep_id=sweep.sweep_id)
        grid = json.loads(sweep.grid_json)
        head = {"sweep_id": sweep.sweep_id, "study": sweep.study, "status": sweep.status, "n_points": sweep.n_points,
                "created_at": sweep.created_at, "updated_at": sweep.updated_at, "grid": grid,
                "base_config": json.loads(sweep.base_config_json)}
    keys = [str(axis[0]) for axis in grid] or _keys(points)
    return {**head, "points": points, "leaderboard": leaderboard(points, view.metric),
            "heatmap": heatmap(points, keys, view), "axes": keys, "family_report": report}


def study_view(store: Store, name: str, view: View) -> dict[str, Any]:
    with store.read_session() as s:
        study = s.get(Study, name)
        if study is None:
            raise SweepNotFound(f"no study {name[:100]!r}", study=name[:100])
        sweeps = [{"sweep_id": w.sweep_id, "status": w.status, "n_points": w.n_points, "created_at": w.created_at}
                  for w in s.scalars(select(Sweep).where(Sweep.study == name).order_by(Sweep.created_at))]
        points = _points(s, SweepPoint.sweep_id.in_(select(Sweep.sweep_id).where(Sweep.study == name)))
        report = _report(s, FamilyScope.STUDY.value, study=name)
        head = {"study": study.name, "strategy": study.strategy, "symbol": study.symbol,
                "data_hash": study.data_hash, "created_at": study.created_at}
    keys = _keys(points)
    return {**head, "sweeps": sweeps, "points": points, "leaderboard": leaderboard(points, view.metric),
            "heatmap": heatmap(points, keys, view), "axes": keys, "family_report": report}
