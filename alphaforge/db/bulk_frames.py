"""Trade/equity rows at the boundary: input validation and dtype enforcement, and the frames read back.

Input is a pandas DataFrame, a pyarrow Table or a list of mappings (the ``insert_mappings`` shape) with the
data model's columns (extra columns are ignored). The result has exactly the table's columns: int64 epoch-ns
``ts``, ``side`` as str (trades), float32 values. Rules, each a :class:`DataInvalid` naming column and row
(the 0-based position in the input):

- ``ts`` present in every row and integer-typed (int64 epoch ns; no floats, no datetimes);
- values numeric; NaN/inf is an error except NaN in ``entry_price``/``exit_price`` (stored as NULL); a
  finite value that becomes inf on the float32 downcast (overflow) is an error;
- ``-0.0`` is stored as ``0.0`` on every backend: SQLite keeps an integral REAL as an integer, so the
  sign of zero cannot survive there, and both backends must read back the same bits. Every other float32
  value round-trips bit for bit;
- ``side`` one of ``buy``/``sell``/``flat``;
- rows are stably sorted by ``ts`` (fills within one bar keep their input order) and then asserted
  monotonic: strictly increasing for equity (one row per bar), non-decreasing for trades.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pandas loads on first use: opening a Store (e.g. `alphaforge runs list`) does not need it
    import pandas as pd

from alphaforge.db.models import EQUITY_VALUE_COLUMNS, TRADE_SIDES, TRADE_VALUE_COLUMNS
from alphaforge.errors import DataInvalid

FLOAT32_MAX = float(np.finfo(np.float32).max)
TRADE_COLUMNS = ("ts", "side", *TRADE_VALUE_COLUMNS)
EQUITY_COLUMNS = ("ts", *EQUITY_VALUE_COLUMNS)
NULLABLE_TRADE_COLUMNS = ("entry_price", "exit_price")
_INT64_MAX = np.iinfo(np.int64).max

FrameLike: TypeAlias = "pd.DataFrame | pa.Table | Sequence[Mapping[str, Any]]"


def columns_of(table: str) -> tuple[str, ...]:
    if table == "trades":
        return TRADE_COLUMNS
    if table == "equity":
        return EQUITY_COLUMNS
    raise ValueError(f"no bulk table {table!r} (expected 'trades' or 'equity')")


def value_columns_of(table: str) -> tuple[str, ...]:
    return TRADE_VALUE_COLUMNS if table == "trades" else EQUITY_VALUE_COLUMNS


def to_frame(data: FrameLike) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pa.Table):
        return data.to_pandas()
    if isinstance(data, Mapping) or isinstance(data, str | bytes):
        raise DataInvalid(
            f"bulk rows must be a DataFrame, a pyarrow Table or a list of mappings, got {type(data).__name__}"
        )
    return pd.DataFrame.from_records(list(data))


@dataclass(frozen=True)
class Rows:
    """Validated rows of one table, sorted by ts. ``order[i]`` is the input position of row ``i``."""

    table: str
    columns: dict[str, np.ndarray]
    order: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    def input_row(self, i: int) -> int:
        return int(self.order[i])


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _ts(table: str, series: pd.Series) -> np.ndarray:
    import pandas as pd

    if len(series) == 0:
        return np.empty(0, dtype=np.int64)
    missing = series.isna().to_numpy()
    if missing.any():
        i = _first(missing)
        raise DataInvalid(f"{table}.ts: missing timestamp at row {i}", column="ts", row=i)
    dtype = series.dtype
    if not pd.api.types.is_integer_dtype(dtype):
        raise DataInvalid(
            f"{table}.ts: expected int64 epoch-ns timestamps, got dtype {dtype} "
            "(convert datetimes with .astype('int64') after tz_convert('UTC'))",
            column="ts",
        )
    if pd.api.types.is_unsigned_integer_dtype(dtype):
        unsigned = series.to_numpy(dtype=np.uint64)
        too_big = unsigned > np.uint64(_INT64_MAX)
        if too_big.any():
            i = _first(too_big)
            raise DataInvalid(f"{table}.ts: {unsigned[i]} at row {i} does not fit int64", column="ts", row=i)
        return unsigned.astype(np.int64)
    return series.to_numpy(dtype=np.int64)


def _side(series: pd.Series) -> np.ndarray:
    missing = series.isna().to_numpy()
    if missing.any():
        i = _first(missing)
        raise DataInvalid(f"trades.side: missing at row {i}", column="side", row=i)
    side = series.to_numpy(dtype=object)
    bad = ~np.isin(side, np.array(TRADE_SIDES, dtype=object))
    if bad.any():
        i = _first(bad)
        raise DataInvalid(
            f"trades.side: {side[i]!r} at row {i} is not one of {', '.join(TRADE_SIDES)}", column="side", row=i
        )
    return side


def _float32(table: str, column: str, series: pd.Series, nullable: bool) -> np.ndarray:
    import pandas as pd

    if series.dtype == np.float32:  # already float32: nothing can overflow, only non-finite values to find
        narrow = series.to_numpy()
        bad = np.isinf(narrow) if nullable else ~np.isfinite(narrow)
        if not bad.any():
            return narrow + np.float32(0.0)  # a copy, with -0.0 -> +0.0 (see the module docstring)
    try:
        wide = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        coerced = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(coerced) & series.notna().to_numpy()
        if not bad.any():
            raise DataInvalid(f"{table}.{column}: values of dtype {series.dtype} are not numbers", column=column) from None
        i = _first(bad)
        raise DataInvalid(
            f"{table}.{column}: {series.iloc[i]!r} at row {i} is not a number", column=column, row=i
        ) from None
    bad = np.isinf(wide) if nullable else ~np.isfinite(wide)
    if bad.any():
        i = _first(bad)
        allowed = " (only NaN, stored as NULL, is allowed here)" if nullable else ""
        raise DataInvalid(
            f"{table}.{column}: non-finite value {wide[i]!r} at row {i}{allowed}", column=column, row=i
        )
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    overflow = np.isinf(narrow)
    if overflow.any():
        i = _first(overflow)
        raise DataInvalid(
            f"{table}.{column}: value {wide[i]!r} at row {i} overflows float32 (max {FLOAT32_MAX:.7g})",
            column=column, row=i,
        )
    narrow += np.float32(0.0)  # -0.0 -> +0.0 (see the module docstring); NaN stays NaN
    return narrow


def normalize(table: str, data: FrameLike) -> Rows:
    """Validate ``data`` for ``table`` ('trades' or 'equity'); see the module docstring for the rules."""
    import pandas as pd

    columns = columns_of(table)
    frame = to_frame(data)
    if len(frame) == 0 and len(frame.columns) == 0:  # e.g. an empty list of mappings
        frame = pd.DataFrame({c: pd.Series([], dtype="int64" if c == "ts" else "float64") for c in columns})
        if table == "trades":
            frame["side"] = frame["side"].astype(object)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataInvalid(f"{table}: missing column(s) {', '.join(missing)}", columns=missing)
    if frame.columns.duplicated().any():
        dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise DataInvalid(f"{table}: duplicate column(s) {', '.join(dup)}", columns=dup)
    out: dict[str, np.ndarray] = {"ts": _ts(table, frame["ts"])}
    if table == "trades":
        out["side"] = _side(frame["side"])
    for column in value_columns_of(table):
        nullable = table == "trades" and column in NULLABLE_TRADE_COLUMNS
        out[column] = _float32(table, column, frame[column], nullable)

    ts = out["ts"]
    n = len(ts)
    order = np.arange(n)
    if n > 1 and (np.diff(ts) < 0).any():
        order = np.argsort(ts, kind="stable")
        out = {k: v[order] for k, v in out.items()}
        ts = out["ts"]
    steps = np.diff(ts)
    if table == "equity":
        repeated = steps <= 0
        if repeated.any():
            i = _first(repeated) + 1
            raise DataInvalid(
                f"equity.ts: duplicate timestamp {ts[i]} at rows {int(order[i - 1])} and {int(order[i])} "
                "(one row per bar)", column="ts", row=int(order[i]),
            )
    elif (steps < 0).any():  # cannot happen after the sort; the data model asks for the assertion
        raise AssertionError("trades.ts not monotonic after the stable sort")
    return Rows(table, out, order)


def normalize_rows(table: str, data: FrameLike) -> pd.DataFrame:
    """The frame with exactly the table's columns and dtypes, stably sorted by ts, validated."""
    import pandas as pd

    return pd.DataFrame(normalize(table, data).columns)


def to_arrow(rows: Rows) -> pa.Table:
    """The rows as the Arrow table to ingest (trades get ``seq`` = 0..n-1 in ts order); no run_hash column.

    Types match the database columns exactly (binary COPY needs that on PostgreSQL): int32 ``seq``
    (INTEGER), int64 ``ts`` (BIGINT), float32 values (REAL), NULL where a nullable value is NaN.
    """
    arrays: dict[str, pa.Array] = {}
    if rows.table == "trades":
        arrays["seq"] = pa.array(np.arange(len(rows), dtype=np.int32))
    for name, values in rows.columns.items():
        if name == "side":
            arrays[name] = pa.array(values, type=pa.string())
        elif name in NULLABLE_TRADE_COLUMNS:
            arrays[name] = pa.array(values, mask=np.isnan(values))
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def read_schema(table: str) -> list[tuple[str, str]]:
    """The (column, Arrow type) pairs of a frame read back."""
    return [(c, "int64" if c == "ts" else "string" if c == "side" else "float32") for c in columns_of(table)]


def to_result_frame(table: str, data: pa.Table) -> pd.DataFrame:
    """The frame handed to callers: int64 ts, str side, float32 values (NULL -> NaN), a RangeIndex."""
    import pandas as pd

    out: dict[str, Any] = {}
    for name in columns_of(table):
        column = data.column(name)
        if name == "ts":
            out[name] = column.to_numpy().astype(np.int64, copy=False)
        elif name == "side":
            out[name] = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object).astype(str)
        else:
            if column.type != pa.float32():
                column = column.cast(pa.float32())
            out[name] = column.to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(out)
    frame.index = pd.RangeIndex(len(frame))
    return frame
