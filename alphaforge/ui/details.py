"""One run for the run page and its API: everything ``runs show`` knows, plus the chart and table reads.

The equity curve is read with one Core query on the read-only engine and reduced on the server
(:mod:`alphaforge.ui.reduce`), so a 500k-bar run ships a few thousand points; trades are read a page at a
time; the parquet exports are built in memory from the same reads.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from alphaforge.db.clock import read_db_now_ms
from alphaforge.db.models import EQUITY_VALUE_COLUMNS, TRADE_VALUE_COLUMNS, Equity, PhaseMetric, Run, Trade
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus
from alphaforge.runs.queries import show_run
from alphaforge.runs.service import RunService
from alphaforge.ui.reduce import DEFAULT_BUCKETS, reduce_indices

EXPORTS = ("trades", "equity")


def resolve(store: Store, run_id: str) -> str:
    """The full run_hash of ``run_id`` (a hash or unique prefix): :class:`RunNotFound` / :class:`RunAmbiguous`."""
    return RunService(store).resolve(run_id)


def run_details(store: Store, run_hash: str) -> dict[str, Any]:
    """``runs show`` for one run plus its phase rows (start, end, rows) and, while running, the heartbeat age."""
    details = show_run(store, run_hash)
    with store.read_session() as s:
        phases = [
            {"phase": p.phase, "started_at": p.started_at, "ended_at": p.ended_at, "duration_ms": p.duration_ms,
             "rows_processed": p.rows_processed}
            for p in s.scalars(select(PhaseMetric).where(PhaseMetric.run_hash == run_hash).order_by(PhaseMetric.id))
        ]
        run = s.get(Run, run_hash)
        now = read_db_now_ms(s)
    heartbeat = run.heartbeat_at if run is not None else None
    details["phase_rows"] = phases
    details["current_phase"] = next((p["phase"] for p in reversed(phases) if p["ended_at"] is None), None) \
        if details["status"] == RunStatus.RUNNING else None
    details["heartbeat_age_ms"] = None if heartbeat is None or details["status"] != RunStatus.RUNNING \
        else max(0, now - heartbeat)
    details["now_ms"] = now
    return details


def equity_arrays(store: Store, run_hash: str) -> dict[str, np.ndarray]:
    """The run's equity rows by ``ts`` as arrays: ``ts`` int64 ns, the value columns float32 (the stored type:
    PostgreSQL hands ``real`` over as rounded text, the float32 cast gives back the exact stored value)."""
    with store.read_session() as s:
        rows = s.execute(select(Equity.ts, *(getattr(Equity, c) for c in EQUITY_VALUE_COLUMNS))
                         .where(Equity.run_hash == run_hash).order_by(Equity.ts)).all()
    if not rows:
        return {"ts": np.empty(0, np.int64), **{c: np.empty(0, np.float32) for c in EQUITY_VALUE_COLUMNS}}
    ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = np.asarray([r[1:] for r in rows], dtype=np.float64).astype(np.float32)
    return {"ts": ts, **{c: values[:, i] for i, c in enumerate(EQUITY_VALUE_COLUMNS)}}


def reduced_equity(store: Store, run_hash: str, buckets: int = DEFAULT_BUCKETS) -> dict[str, Any]:
    """The equity and drawdown curves reduced to at most ``6 * buckets`` points keeping every extreme of both;
    ``ts_ms`` in epoch milliseconds (what the chart's date axis takes)."""
    arrays = equity_arrays(store, run_hash)
    n = len(arrays["ts"])
    keep = reduce_indices([arrays["equity"], arrays["drawdown"]], buckets) if n else np.empty(0, np.int64)
    return {
        "run_hash": run_hash, "n_total": n, "n_points": len(keep),
        "ts_ms": (arrays["ts"][keep] // 1_000_000).tolist(),
        "equity": arrays["equity"][keep].tolist(), "drawdown": arrays["drawdown"][keep].tolist(),
    }


TRADE_COLUMNS = ("seq", "ts", "side", *TRADE_VALUE_COLUMNS)


def _trade_rows(store: Store, run_hash: str, limit: int | None = None, offset: int = 0) -> list[Any]:
    stmt = (select(*(getattr(Trade, c) for c in TRADE_COLUMNS)).where(Trade.run_hash == run_hash)
            .order_by(Trade.seq).offset(offset))
    with store.read_session() as s:
        return list(s.execute(stmt if limit is None else stmt.limit(limit)).all())


def trades_page(store: Store, run_hash: str, page: int, per_page: int) -> dict[str, Any]:
    """One page of the run's trades in ``seq`` order, with the total count."""
    with store.read_session() as s:
        total = int(s.scalar(select(func.count()).select_from(Trade).where(Trade.run_hash == run_hash)) or 0)
    rows = _trade_rows(store, run_hash, per_page, (page - 1) * per_page)
    return {"run_hash": run_hash, "total": total, "page": page, "per_page": per_page,
            "columns": list(TRADE_COLUMNS), "trades": [dict(zip(TRADE_COLUMNS, r, strict=True)) for r in rows]}


def export_parquet(store: Store, run_hash: str, name: str) -> bytes:
    """``trades`` or ``equity`` of the run as a parquet file: the columns and dtypes of ``runs export``
    (int64 ``ts``, float32 values; trades without ``seq``, their row order is the sequence)."""
    if name == "equity":
        arrays = equity_arrays(store, run_hash)
        table = pa.table({"ts": arrays["ts"], **{c: arrays[c] for c in EQUITY_VALUE_COLUMNS}})
    else:
        rows = _trade_rows(store, run_hash)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(TRADE_COLUMNS)
        by_name = dict(zip(TRADE_COLUMNS, columns, strict=True))
        table = pa.table({"ts": pa.array(by_name["ts"], pa.int64()), "side": pa.array(by_name["side"], pa.string()),
                          **{c: pa.array(by_name[c], pa.float32()) for c in TRADE_VALUE_COLUMNS}})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
