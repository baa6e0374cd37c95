"""Sweeps as stored families: every sweep is recorded with its points, in a study.

A **study** is one dataset (``data_hash``) and one strategy: the family of every configuration a researcher
tried on them, across sweeps, so that selection statistics count every trial and not only the last grid.
Its default name is ``<symbol>/<strategy>/<first 12 hex digits of data_hash>``; ``--study NAME`` picks
another, and a study that exists is only reused for the same dataset and strategy (``CONFIG_INVALID``
otherwise).

A **sweep** is identified by ``sweep_id = hash_obj({"base_config", "grid", "data_hash"})``: the canonical base
config (the raw table after ``--set``, without ``features.cache_dir``, which is a location), the canonical grid
(``[[dotted key, [values…]], …]`` in axis order, values parsed as ``--set`` parses them) and the data hash.
Running the same sweep again updates the same row (and reuses every completed point: runs are content
addressed). A sweep belongs to one study.

Its **points** are stored in grid order: ``params`` (the point's coordinates), the ``run_hash`` that answers
it (a point that is the same run as an earlier one shares its run), or ``NULL`` with the ``skip_reason`` of an
invalid point. The sweep's status is ``completed`` when every run completed, else ``failed``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from alphaforge.config import apply_overrides, load_config
from alphaforge.data import load_ohlcv
from alphaforge.db.models import Run, Study, Sweep, SweepPoint
from alphaforge.db.store import Store
from alphaforge.db.upsert import insert_ignore
from alphaforge.enums import RunStatus, SweepStatus
from alphaforge.errors import ConfigInvalid
from alphaforge.hashing import canonical_json, hash_obj
from alphaforge.runs.service import epoch_ms
from alphaforge.runs.sweep import ProgressFn, SweepResult, check_execution, run_sweep, shared_url
from alphaforge.runs.sweep_grid import grid_configs, parse_grid

__all__ = ["FamilySweep", "SweepFamily", "default_study_name", "plan_family", "run_family_sweep"]


@dataclass(frozen=True)
class SweepFamily:
    """Where a sweep belongs: its identity, its study and what the study is about."""

    sweep_id: str
    study: str
    data_hash: str
    strategy: str
    symbol: str | None
    base_config: dict[str, Any]
    grid: list[list[Any]]


@dataclass(frozen=True)
class FamilySweep:
    """A recorded sweep and its result."""

    family: SweepFamily
    result: SweepResult

    def to_json(self) -> dict[str, Any]:
        """``{"sweep_id", "study", "points": [{"index", "params", "run_hash", "status", "reused"}], "failed"}``.

        Points in grid order; an invalid point has status ``"skipped"`` and no run; ``failed`` lists the failed
        runs and the invalid points as ``{"index", "params", "run_hash", "error"}``.
        """
        points: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        by_hash = {r.run_hash: r for r in self.result.runs if r.run_hash}
        for r in self.result.runs:
            points.append({"index": r.index, "params": r.params, "run_hash": r.run_hash, "status": r.status,
                           "reused": r.reused})
            if r.status != RunStatus.COMPLETED:
                failed.append({"index": r.index, "params": r.params, "run_hash": r.run_hash, "error": r.error})
        for k in self.result.skipped:
            same = by_hash.get(k.run_hash) if k.run_hash else None
            if same is not None:  # the same run as an earlier point: answered by it
                points.append({"index": k.index, "params": k.params, "run_hash": same.run_hash,
                               "status": same.status, "reused": True})
            else:
                points.append({"index": k.index, "params": k.params, "run_hash": None, "status": "skipped",
                               "reused": False})
                failed.append({"index": k.index, "params": k.params, "run_hash": None, "error": k.reason})
        return {"sweep_id": self.family.sweep_id, "study": self.family.study,
                "points": sorted(points, key=lambda p: p["index"]), "failed": sorted(failed, key=lambda p: p["index"])}


def default_study_name(symbol: str | None, strategy: str, data_hash: str) -> str:
    """``<symbol>/<strategy>/<data_hash[:12]>`` (symbol ``-`` when the points disagree on it)."""
    return f"{symbol or '-'}/{strategy}/{data_hash[:12]}"


def _canonical_base(base: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    features = out.get("features")
    if isinstance(features, dict):
        features.pop("cache_dir", None)
        if not features:
            out.pop("features")
    return out


def _canonical_grid(grid: Sequence[str]) -> list[list[Any]]:
    return [[key, [apply_overrides({}, [f"v={text}"])["v"] for text in values]] for key, values in parse_grid(grid)]


def plan_family(base: dict[str, Any], grid: Sequence[str], configs: Sequence[dict[str, Any]], data_hash: str,
                study: str | None = None) -> SweepFamily:
    """The sweep's identity and study (no database access). CONFIG_INVALID when the grid spans strategies."""
    strategies: set[str] = set()
    symbols: set[str] = set()
    for raw in configs:
        try:
            config = load_config(raw)
        except ConfigInvalid:
            continue
        strategies.add(config.strategy.name)
        symbols.add(config.symbol)
    if not strategies:
        name = (base.get("strategy") or {}).get("name") if isinstance(base.get("strategy"), dict) else None
        strategies = {str(name or "unknown")}
    if len(strategies) > 1:
        raise ConfigInvalid(f"--grid varies the strategy ({', '.join(sorted(strategies))}): a study is one dataset "
                            "and one strategy; sweep each strategy on its own", field="strategy.name")
    strategy = strategies.pop()
    symbol = symbols.pop() if len(symbols) == 1 else None
    if study is not None and not study.strip():
        raise ConfigInvalid("--study: give a non-empty name", field="study")
    base_config, canonical_grid = _canonical_base(base), _canonical_grid(grid)
    sweep_id = hash_obj({"base_config": base_config, "grid": canonical_grid, "data_hash": data_hash})
    return SweepFamily(sweep_id, study.strip() if study else default_study_name(symbol, strategy, data_hash),
                       data_hash, strategy, symbol, base_config, canonical_grid)


def open_family(store: Store, family: SweepFamily, n_points: int) -> None:
    """Record the study (if new) and the sweep as ``running``; refuse a study of another dataset or strategy,
    and a sweep recorded in another study."""
    now = epoch_ms()
    with store.session() as s:
        insert_ignore(s, Study.__table__, [{  # type: ignore[arg-type]
            "name": family.study, "data_hash": family.data_hash, "strategy": family.strategy,
            "symbol": family.symbol, "created_at": now,
        }])
        row = s.get(Study, family.study)
        assert row is not None
        if (row.data_hash, row.strategy) != (family.data_hash, family.strategy):
            raise ConfigInvalid(
                f"--study {family.study!r} is a study of strategy {row.strategy!r} on data {row.data_hash[:12]}…; "
                f"this sweep is strategy {family.strategy!r} on data {family.data_hash[:12]}…: a study is one "
                "dataset and one strategy (choose another --study name)", field="study")
        sweep = s.get(Sweep, family.sweep_id)
        if sweep is None:
            s.add(Sweep(sweep_id=family.sweep_id, study=family.study, data_hash=family.data_hash,
                        base_config_json=canonical_json(family.base_config), grid_json=canonical_json(family.grid),
                        n_points=n_points, status=SweepStatus.RUNNING, created_at=now, updated_at=now))
        elif sweep.study != family.study:
            raise ConfigInvalid(f"sweep {family.sweep_id[:12]} is recorded in study {sweep.study!r}; run it without "
                                f"--study or with --study {sweep.study!r}", field="study")
        else:
            sweep.status, sweep.updated_at = SweepStatus.RUNNING, max(now, sweep.updated_at)


def close_family(store: Store, family: SweepFamily, result: SweepResult) -> None:
    """Record every point of the sweep (replacing a previous record of it) and its final status."""
    answered: dict[int, tuple[str | None, str | None]] = {r.index: (r.run_hash, None) for r in result.runs}
    planned = {r.index: r.run_hash for r in result.runs}
    rows: list[dict[str, Any]] = []
    points = {r.index: r.params for r in result.runs} | {k.index: k.params for k in result.skipped}
    for k in result.skipped:
        answered[k.index] = (k.run_hash, None) if k.run_hash else (None, k.reason)
    now = epoch_ms()
    with store.session() as s:
        hashes = {h for h, _ in answered.values() if h}
        existing = set(s.scalars(select(Run.run_hash).where(Run.run_hash.in_(sorted(hashes))))) if hashes else set()
        for index in sorted(points):
            run_hash, reason = answered[index]
            if run_hash is not None and run_hash not in existing:  # its worker died before creating it
                run_hash, reason = None, f"no run was created for this point (run_hash {planned.get(index)})"
            rows.append({"sweep_id": family.sweep_id, "point_index": index, "params_json": canonical_json(points[index]),
                         "run_hash": run_hash, "skip_reason": reason})
        s.execute(delete(SweepPoint).where(SweepPoint.sweep_id == family.sweep_id))
        if rows:
            s.execute(insert(SweepPoint), rows)
        sweep = s.get(Sweep, family.sweep_id)
        assert sweep is not None
        sweep.n_points = len(rows)
        sweep.status = SweepStatus.COMPLETED if result.ok else SweepStatus.FAILED
        sweep.updated_at = max(now, sweep.updated_at)


def run_family_sweep(db_url: str, data_path: str | os.PathLike[str], base: dict[str, Any], grid: Sequence[str], *,
                     study: str | None = None, workers: int | None = None, scheduler: str | None = None,
                     cache_dir: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None,
                     batch_size: int | None = None) -> FamilySweep:
    """Expand ``grid`` over ``base``, record the sweep in its study, run it (:func:`run_sweep`), record its
    points. The study is checked before any point runs."""
    check_execution(workers, scheduler)
    configs = grid_configs(base, grid)
    if not os.path.isfile(data_path):
        raise ConfigInvalid(f"--data {data_path}: no such file", field="data")
    family = plan_family(base, grid, configs, load_ohlcv(data_path).data_hash, study)
    store = Store(shared_url(db_url))
    open_family(store, family, len(configs))
    try:
        result = run_sweep(db_url, data_path, configs, workers=workers, scheduler=scheduler, cache_dir=cache_dir,
                           progress=progress, batch_size=batch_size)
    except BaseException:
        with store.session() as s:
            sweep = s.get(Sweep, family.sweep_id)
            if sweep is not None:
                sweep.status, sweep.updated_at = SweepStatus.FAILED, max(epoch_ms(), sweep.updated_at)
        raise
    close_family(store, family, result)
    return FamilySweep(family, result)
