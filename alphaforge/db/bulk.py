"""Bulk paths for the high-volume rows (trades, equity): never per-object ORM instances.

Input: a pandas DataFrame, a pyarrow Table, or a list of mappings (the ``insert_mappings`` shape) with the
data model's columns. Dtypes are enforced at the boundary (int64 ns ``ts``, float32 values; a value that
overflows float32 or becomes NaN/inf on downcast is a :class:`DataInvalid` error), rows are stably sorted by
``ts`` and checked monotonic (strictly increasing for equity: one row per bar), and each call is atomic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from alphaforge.db.models import EQUITY_VALUE_COLUMNS, TRADE_SIDES, TRADE_VALUE_COLUMNS, Equity, Trade
from alphaforge.errors import DataInvalid

FLOAT32_MAX = float(np.finfo(np.float32).max)
TRADE_COLUMNS = ("ts", "side", *TRADE_VALUE_COLUMNS)
EQUITY_COLUMNS = ("ts", *EQUITY_VALUE_COLUMNS)
_NULLABLE_TRADE = ("entry_price", "exit_price")

FrameLike: TypeAlias = pd.DataFrame | pa.Table | Sequence[Mapping[str, Any]]


def to_frame(data: FrameLike) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pa.Table):
        return data.to_pandas()
    return pd.DataFrame.from_records(list(data))


def _float32(table: str, column: str, values: Any, nullable: bool) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    bad_nan = ~np.isfinite(arr) if not nullable else np.isinf(arr)
    if bad_nan.any():
        i = int(np.flatnonzero(bad_nan)[0])
        raise DataInvalid(f"{table}.{column}: non-finite value {arr[i]!r} at row {i}", column=column, row=i)
    over = np.abs(np.nan_to_num(arr)) > FLOAT32_MAX
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise DataInvalid(
            f"{table}.{column}: value {arr[i]!r} at row {i} overflows float32", column=column, row=i
        )
    return arr.astype(np.float32)


def normalize_rows(table: str, data: FrameLike) -> pd.DataFrame:
    """The frame with exactly the table's columns and dtypes, stably sorted by ts, validated."""
    frame = to_frame(data)
    columns = TRADE_COLUMNS if table == "trades" else EQUITY_COLUMNS
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataInvalid(f"{table}: missing column(s) {', '.join(missing)}", columns=missing)
    ts = frame["ts"].to_numpy()
    if ts.dtype.kind not in "iu" and len(ts):
        raise DataInvalid(f"{table}.ts: expected int64 epoch-ns timestamps, got dtype {ts.dtype}")
    out = pd.DataFrame({"ts": ts.astype(np.int64, copy=False)})
    if table == "trades":
        side = frame["side"].astype(str).to_numpy()
        bad = ~np.isin(side, TRADE_SIDES)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataInvalid(f"trades.side: {side[i]!r} at row {i} is not one of {TRADE_SIDES}", row=i)
        out["side"] = side
    for column in columns[2 if table == "trades" else 1:]:
        out[column] = _float32(table, column, frame[column].to_numpy(), column in _NULLABLE_TRADE)
    order = np.argsort(out["ts"].to_numpy(), kind="stable")
    if len(order) and not (order == np.arange(len(order))).all():
        out = out.iloc[order].reset_index(drop=True)
    sorted_ts = out["ts"].to_numpy()
    steps = np.diff(sorted_ts)
    if table == "equity" and (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DataInvalid(f"equity.ts: duplicate timestamp {sorted_ts[i]} at row {i} (one row per bar)", row=i)
    return out


class BulkMixin:
    engine: Any

    def session(self) -> Any: ...  # provided by Store

    def insert_trades(self, run_hash: str, data: FrameLike, *, session: Any = None) -> int:
        frame = normalize_rows("trades", data)
        frame.insert(0, "seq", np.arange(len(frame), dtype=np.int64))
        return self._insert(Trade.__table__, run_hash, frame, session)

    def insert_equity(self, run_hash: str, data: FrameLike, *, session: Any = None) -> int:
        return self._insert(Equity.__table__, run_hash, normalize_rows("equity", data), session)

    def _insert(self, table: Any, run_hash: str, frame: pd.DataFrame, session: Any) -> int:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for r in records:
            r["run_hash"] = run_hash
        if session is not None:
            session.execute(table.insert(), records)
        else:
            with self.session() as s:
                s.execute(table.insert(), records)
        return len(records)

    def read_trades(self, run_hash: str) -> pd.DataFrame:
        cols = [Trade.__table__.c[c] for c in TRADE_COLUMNS]
        stmt = select(*cols).where(Trade.run_hash == run_hash).order_by(Trade.seq)
        return self._read(stmt, TRADE_COLUMNS)

    def read_equity(self, run_hash: str) -> pd.DataFrame:
        cols = [Equity.__table__.c[c] for c in EQUITY_COLUMNS]
        stmt = select(*cols).where(Equity.run_hash == run_hash).order_by(Equity.ts)
        return self._read(stmt, EQUITY_COLUMNS)

    def _read(self, stmt: Any, columns: Sequence[str]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        frame = pd.DataFrame.from_records(rows, columns=list(columns))
        frame["ts"] = frame["ts"].astype(np.int64)
        for c in columns:
            if c not in ("ts", "side"):
                frame[c] = frame[c].astype(np.float64).astype(np.float32)
        return frame
