"""The runs listing: one page of runs, filtered, sorted and counted in the database (never in Python).

Filters (all combined with AND): statuses, symbol and strategy (exact, from ``config_json``), study (runs of
the study's sweeps), and the metric expression of :mod:`alphaforge.ui.params` (its own AND/OR). Sort by a
run column, ``pvalue`` or any backtest metric, NULLs last, ties broken by ``run_hash``. Then only the page's
rows are read in full: their headline metrics, validation summary, current phase and heartbeat age.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from alphaforge.db.clock import read_db_now_ms
from alphaforge.db.models import Metric, PhaseMetric, Run, Validation
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus, values
from alphaforge.hashing import canonical_json
from alphaforge.ui import studies
from alphaforge.ui.params import RUN_SORTS, Cond, Filter, QueryInvalid, RunQuery, names_in
from alphaforge.ui.sql import METRICS_PHASE, PVALUE, MetricJoins, config_text

#: the metric columns of the runs page, in order
HEADLINE = ("sharpe", "cagr", "max_drawdown", "total_return", "n_trades")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[dict[str, Any]]
    now_ms: int

    def to_json(self, query: RunQuery) -> dict[str, Any]:
        return {"total": self.total, "page": query.page, "per_page": query.per_page, "sort": query.sort,
                "dir": "desc" if query.descending else "asc", "now_ms": self.now_ms, "runs": self.rows}


def known_metrics(session: Session, names: set[str]) -> set[str]:
    """Those of ``names`` stored as a backtest metric of at least one run (``pvalue`` always counts)."""
    found = {PVALUE} & names
    for name in sorted(names - found):
        hit = session.scalar(select(Metric.id).where(Metric.key == name, Metric.phase == METRICS_PHASE).limit(1))
        if hit is not None:
            found.add(name)
    return found


def _check_names(session: Session, query: RunQuery) -> None:
    wanted = names_in(query.filters) | ({query.sort} - set(RUN_SORTS) - {"symbol", "strategy"})
    unknown = wanted - known_metrics(session, wanted)
    if unknown:
        raise QueryInvalid(
            f"unknown metric {', '.join(sorted(unknown))!r}: sort by {', '.join(RUN_SORTS)}, symbol, strategy or "
            f"a stored metric such as {', '.join(HEADLINE)}", param="filters" if names_in(query.filters) & unknown
            else "sort",
        )


def _condition(node: Filter, joins: MetricJoins) -> ColumnElement[bool]:
    if isinstance(node, Cond):
        return _OPS[node.op](joins.value(node.name), node.value)
    parts = [_condition(p, joins) for p in node.parts]
    return and_(*parts) if node.op == "and" else or_(*parts)


def _where(stmt: Select[Any], query: RunQuery, dialect: str, joins: MetricJoins) -> Select[Any]:
    """``stmt`` filtered by ``query`` (the metric filter's values come from ``joins``: apply them after)."""
    if query.statuses:
        stmt = stmt.where(Run.status.in_(query.statuses))
    for value, path in ((query.symbol, ("symbol",)), (query.strategy, ("strategy", "name"))):
        if value:
            # config_json is canonical JSON, so the pair appears verbatim: a substring test (cheap) keeps the
            # JSON parse (exact) to the rows that can match
            fragment = canonical_json({path[-1]: value})[1:-1]
            stmt = stmt.where(Run.config_json.contains(fragment, autoescape=True), config_text(dialect, *path) == value)
    if query.study:
        stmt = stmt.where(Run.run_hash.in_(studies.run_hashes_of_study(query.study)))
    if query.filters is not None:
        stmt = stmt.where(_condition(query.filters, joins))
    return stmt


def _order(query: RunQuery, dialect: str, joins: MetricJoins) -> list[Any]:
    key: Any
    if query.sort in ("updated_at", "created_at", "status", "run_hash"):
        key = getattr(Run, query.sort)
    elif query.sort in ("symbol", "strategy"):
        key = config_text(dialect, *(("symbol",) if query.sort == "symbol" else ("strategy", "name")))
    else:
        key = joins.value(query.sort)
    ordered = key.desc() if query.descending else key.asc()
    return [ordered.nulls_last(), Run.run_hash]


def _recency_bound(session: Session, query: RunQuery) -> ColumnElement[bool] | None:
    """For the default listing (by ``updated_at``, filtered by status at most): the ``updated_at`` of the page's
    last row, read from the ``(status, updated_at)`` index alone, as a bound that lets the page query touch
    only the rows up to it instead of sorting every run. Every row of the page has ``updated_at`` on the near
    side of the bound (ties included), so the bounded query returns the same page. ``None``: no shortcut."""
    if query.sort != "updated_at" or query.symbol or query.strategy or query.study or query.filters is not None:
        return None
    order = Run.updated_at.desc() if query.descending else Run.updated_at.asc()
    # the status condition (redundant without a status filter) is what lets both queries use the index
    statuses = Run.status.in_(query.statuses or values(RunStatus))
    edge = session.scalar(select(Run.updated_at).where(statuses)
                          .order_by(order).offset(query.offset + query.per_page - 1).limit(1))
    if edge is None:  # the page runs past the last run: no bound to take
        return None
    return and_(statuses, Run.updated_at >= edge if query.descending else Run.updated_at <= edge)


def list_page(store: Store, query: RunQuery) -> Page:
    """One page of runs for ``query`` (see the module docstring)."""
    dialect = store.dialect
    with store.read_session() as s:
        _check_names(s, query)
        counted = MetricJoins()
        total = int(s.scalar(counted.apply(_where(select(func.count()).select_from(Run), query, dialect, counted)))
                    or 0)
        # the page's keys first (a narrow sort: the wide config/manifest columns are never carried through it),
        # then those rows in full
        joins = MetricJoins()
        keys = _where(select(Run.run_hash), query, dialect, joins).order_by(*_order(query, dialect, joins))
        keys = joins.apply(keys)
        bound = _recency_bound(s, query)
        if bound is not None:
            keys = keys.where(bound)
        hashes = list(s.scalars(keys.limit(query.per_page).offset(query.offset)))
        by_hash = {r.run_hash: r for r in s.scalars(select(Run).where(Run.run_hash.in_(hashes)))}
        runs = [by_hash[h] for h in hashes if h in by_hash]
        now = read_db_now_ms(s)
        rows = _rows(s, runs, now)
    return Page(total=total, rows=rows, now_ms=now)


def _rows(session: Session, runs: list[Run], now: int) -> list[dict[str, Any]]:
    hashes = [r.run_hash for r in runs]
    metrics: dict[tuple[str, str], float | None] = {}
    for h, k, v, t in session.execute(
        select(Metric.run_hash, Metric.key, Metric.value, Metric.value_type).where(
            Metric.run_hash.in_(hashes), Metric.phase == METRICS_PHASE, Metric.key.in_(HEADLINE))
    ):
        metrics[(h, k)] = float(v) if t in ("int", "float") else None
    validation = {h: (p, payload) for h, p, payload in session.execute(
        select(Validation.run_hash, Validation.permutation_pvalue, Validation.payload_json)
        .where(Validation.run_hash.in_(hashes)))}
    running = [r.run_hash for r in runs if r.status == RunStatus.RUNNING]
    phases = {h: phase for h, phase in session.execute(
        select(PhaseMetric.run_hash, PhaseMetric.phase)
        .where(PhaseMetric.run_hash.in_(running), PhaseMetric.ended_at.is_(None))
        .order_by(PhaseMetric.id))} if running else {}
    out = []
    for r in runs:
        config = json.loads(r.config_json)
        pvalue, payload = validation.get(r.run_hash, (None, None))
        out.append({
            "run_hash": r.run_hash, "status": r.status, "created_at": r.created_at, "updated_at": r.updated_at,
            "age_ms": max(0, now - r.created_at),
            "symbol": config.get("symbol"), "strategy": (config.get("strategy") or {}).get("name"),
            "metrics": {k: metrics.get((r.run_hash, k)) for k in HEADLINE},
            "pvalue": pvalue, "ci_verdict": ci_verdict(payload),
            "phase": phases.get(r.run_hash),
            "heartbeat_age_ms": None if r.heartbeat_at is None or r.status != RunStatus.RUNNING
            else max(0, now - r.heartbeat_at),
        })
    return out


def ci_verdict(payload_json: str | None) -> str | None:
    """The CI-width verdict stored in the validation payload (``passed``, ``warned``, ``failed``…)."""
    if not payload_json:
        return None
    payload = json.loads(payload_json)
    verdict = (payload.get("ci_width") or {}).get("verdict")
    return None if verdict is None else str(verdict)
