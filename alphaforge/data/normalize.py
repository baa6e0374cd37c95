"""OHLCV ingest: normalize, validate, hash, count anomalies.

Normalized frame
    Columns ``ts, open, high, low, close[, adj_close], volume`` in that order; ``ts`` int64 epoch ns UTC
    (strictly increasing), prices float32, ``volume`` int64; a RangeIndex.

Reading rules
    * The timestamp is the column named ``ts``, ``timestamp``, ``datetime``, ``date`` or ``time`` (any case;
      exactly one may be present), else an unnamed first CSV column / the stored Parquet index, else a
      DataFrame's DatetimeIndex (or an index with one of those names).
    * Timestamps may be ISO-8601 strings, dates, datetimes (tz-aware ones are converted to UTC, naive ones are
      taken as UTC) or epoch numbers. The epoch unit is inferred once per column from the largest magnitude:
      ``< 1e11`` seconds, ``< 1e14`` milliseconds, ``< 1e17`` microseconds, else nanoseconds.
      Other string formats go through pandas' per-value inference (month first).
    * Price / volume columns are matched case-insensitively, spaces and dashes read as ``_`` (``Adj Close``
      is ``adj_close``). ``volume`` is required; it may be written as a float but must be integral.
    * Parquet reads only the needed columns. CSV must be UTF-8 (a BOM is allowed, ``.csv.gz`` is fine).

Every broken rule raises :class:`~alphaforge.errors.DataInvalid` naming the row (position and ISO
timestamp), the column and the rule; ``exc.context`` holds ``row, ts, column, rule, value, n_rows``.
Values are checked in float64 *before* the float32 downcast, so overflow (|x| > float32 max) is caught.

data_hash rule (``alphaforge-ohlcv-v1``)
    ``sha256( canonical_json({"format": "alphaforge-ohlcv-v1", "columns": [...], "dtypes": [...],
    "n_bars": n}) as UTF-8  ||  the raw little-endian bytes of each column in column order )`` where
    ``ts``/``volume`` are ``<i8`` and prices ``<f4``. It depends only on the normalized bars, never on the
    file format, so the same bars from CSV or Parquet hash the same.

Anomaly counters (always all keys)
    ``gaps``: spacings ``ts[i+1] - ts[i]`` greater than ``GAP_FACTOR`` (3) times the median spacing;
    ``zero_volume``: bars with volume 0; ``flat_bars``: bars with high == low (in float32).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import DataInvalid
from alphaforge.hashing import canonical_json

OHLCV_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")
ANOMALY_KEYS: tuple[str, ...] = ("gaps", "zero_volume", "flat_bars")
GAP_FACTOR = 3.0
HASH_FORMAT = "alphaforge-ohlcv-v1"

_TS_NAMES = ("ts", "timestamp", "datetime", "date", "time")
_INDEX_NAMES = ("", "unnamed:_0", "__index_level_0__")
_ALIASES = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
            "adj_close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close"}
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
_I64_MAX = np.iinfo(np.int64).max
_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_NUMERIC_RE = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_NULL_WORDS = {"", "nan", "na", "n/a", "null", "none", "-nan", "inf", "-inf", "+inf", "infinity", "-infinity"}
_NON_SPACE = re.compile(rb"\S")
_FIX = "Fix or drop the offending bars in the source data and load again."


@dataclass(frozen=True)
class Dataset:
    """A normalized, validated OHLCV dataset with its content hash and anomaly counters."""

    frame: pd.DataFrame
    data_hash: str
    anomaly_counters: dict[str, int]
    source: str | None = None
    file_sha256: str | None = None  # sha256 of the file's bytes that were parsed (None: not read from a file)

    @property
    def n_bars(self) -> int:
        return len(self.frame)


# --------------------------------------------------------------------------- errors
def _iso(ts_ns: Any) -> str | None:
    if ts_ns is None:
        return None
    return pd.Timestamp(int(ts_ns), unit="ns", tz="UTC").isoformat()


def _fail(rule: str, what: str, *, mask: np.ndarray | None = None, row: int | None = None,
          ts: np.ndarray | None = None, column: str | None = None, value: Any = None,
          fix: str = _FIX) -> DataInvalid:
    """A DataInvalid for the first row of ``mask`` (or ``row``), naming row, timestamp, column and rule."""
    n_rows = 1
    if mask is not None:
        hits = np.flatnonzero(mask)
        row, n_rows = int(hits[0]), int(hits.size)
    ts_iso = _iso(ts[row]) if ts is not None and row is not None else None
    where = []
    if row is not None:
        where.append(f"row {row}" + (f" (ts {ts_iso})" if ts_iso else ""))
    if column is not None:
        where.append(f"column {column!r}")
    more = f"; {n_rows} rows break this rule" if n_rows > 1 else ""
    prefix = ", ".join(where) + ": " if where else ""
    msg = f"OHLCV data invalid: {prefix}{what} [rule {rule}{more}]. {fix}"
    return DataInvalid(msg, row=row, ts=ts_iso, column=column, rule=rule, value=value, n_rows=n_rows)


# --------------------------------------------------------------------------- column resolution
def _key(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _resolve_columns(names: list[Any]) -> tuple[int | None, bool, dict[str, int]]:
    """(position of the timestamp column or None, whether it is named, canonical name -> position)."""
    keys = [_key(n) for n in names]
    found: dict[str, int] = {}
    for pos, k in enumerate(keys):
        canon = _ALIASES.get(k)
        if canon is not None:
            if canon in found:
                raise _fail("ambiguous_column", f"columns {names[found[canon]]!r} and {names[pos]!r} both "
                            f"read as {canon!r}", column=str(names[pos]), fix="Keep only one of them.")
            found[canon] = pos
    ts_hits = [p for p, k in enumerate(keys) if k in _TS_NAMES]
    if len(ts_hits) > 1:
        listed = ", ".join(repr(names[p]) for p in ts_hits)
        raise _fail("ambiguous_column", f"several timestamp columns ({listed})", column=str(names[ts_hits[1]]),
                    fix="Keep exactly one timestamp column (or merge date and time into one).")
    named = bool(ts_hits)
    if not named:
        ts_hits = [p for p, k in enumerate(keys) if k in _INDEX_NAMES and (p == 0 or k != "")][:1]
    for col in ("open", "high", "low", "close", "volume"):
        if col not in found:
            raise _fail("missing_column", f"required column {col!r} is missing (found {list(map(str, names))})",
                        column=col, fix="Add the column (names are matched case-insensitively).")
    return (ts_hits[0] if ts_hits else None), named, found


def _layout(found: dict[str, int]) -> tuple[str, ...]:
    return OHLCV_COLUMNS[:5] + (("adj_close",) if "adj_close" in found else ()) + ("volume",)


# --------------------------------------------------------------------------- parsing
def _unit_of(max_abs: float) -> str:
    return "s" if max_abs < 1e11 else "ms" if max_abs < 1e14 else "us" if max_abs < 1e17 else "ns"


def _epoch_to_ns(values: np.ndarray, col: str) -> np.ndarray:
    if values.size == 0:
        return values.astype(np.int64)
    factor = _NS_PER[_unit_of(float(np.max(np.abs(values.astype(np.float64)))))]
    if values.dtype.kind in "iu":
        limit = _I64_MAX // factor
        bad = values > limit if values.dtype.kind == "u" else (values > limit) | (values < -limit)
        if bad.any():
            raise _fail("ts_range", "epoch value outside the int64-nanosecond range (1677..2262)", mask=bad,
                        column=col, value=str(values[np.argmax(bad)]))
        return values.astype(np.int64) * factor
    scaled = np.round(values.astype(np.float64) * factor)
    bad = ~(np.abs(scaled) < 9.2e18)
    if bad.any():
        raise _fail("ts_range", "epoch value not finite or outside the int64-nanosecond range", mask=bad,
                    column=col, value=float(values[np.argmax(bad)]))
    return scaled.astype(np.int64)


def _datetimes_to_ns(s: pd.Series, col: str) -> np.ndarray:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = s.to_numpy()
    unit = np.datetime_data(arr.dtype)[0]
    factor = _NS_PER.get(unit)
    if factor is None:
        return _datetimes_to_ns(pd.Series(arr.astype("datetime64[s]")), col)
    return _scaled(arr.view(np.int64), factor, col)


def _scaled(v: np.ndarray, factor: int, col: str) -> np.ndarray:
    if factor == 1:
        return v.astype(np.int64, copy=False)
    limit = _I64_MAX // factor
    bad = (v > limit) | (v < -limit)
    if bad.any():
        raise _fail("ts_range", "timestamp outside the int64-nanosecond range (1677..2262)", mask=bad, column=col)
    return v * factor


def _parse_ts(s: pd.Series, col: str) -> np.ndarray:
    """Any supported timestamp representation -> int64 epoch ns UTC."""
    missing = s.isna().to_numpy()
    if missing.any():
        raise _fail("ts_missing", "timestamp is missing", mask=missing, column=col,
                    fix="Every bar needs a timestamp; fill it in or drop the bar.")
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return _datetimes_to_ns(s, col)
    if dtype.kind == "b":
        raise _fail("unparsable", "timestamp column holds booleans", row=0, column=col, value=bool(s.iloc[0]))
    if dtype.kind in "iu":
        return _epoch_to_ns(s.to_numpy(dtype=np.uint64 if dtype.kind == "u" else np.int64), col)
    if dtype.kind == "f":
        return _epoch_to_ns(s.to_numpy(dtype=np.float64), col)
    first = s.iloc[0]
    if isinstance(first, str) and _NUMERIC_RE.match(first):
        num = pd.to_numeric(s, errors="coerce")
        if not num.isna().any():
            return _parse_ts(num, col)
    try:
        dt = pd.to_datetime(s, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        dt = pd.to_datetime(s, utc=True, format="mixed", errors="coerce")
    bad = dt.isna().to_numpy()
    if bad.any():
        raise _fail("unparsable", f"cannot read timestamp {s.iloc[int(np.argmax(bad))]!r}", mask=bad, column=col,
                    value=str(s.iloc[int(np.argmax(bad))]),
                    fix="Use ISO-8601 (2024-01-31T09:30:00Z) or epoch seconds/ms/us/ns.")
    return _datetimes_to_ns(dt, col)


def _parse_number(s: pd.Series, col: str, ts: np.ndarray) -> np.ndarray:
    """A numeric column as float64 (or int64 for integer volume); NaN marks missing values."""
    dtype = s.dtype
    if dtype.kind == "b":
        raise _fail("unparsable", "expected a number, got a boolean", row=0, ts=ts, column=col)
    if pd.api.types.is_numeric_dtype(dtype):
        if dtype.kind in "iu" and col == "volume" and not s.isna().any():
            v = s.to_numpy()
            if dtype.kind == "u" and v.size and v.max() > _I64_MAX:
                raise _fail("volume_range", "volume exceeds int64", mask=v > _I64_MAX, ts=ts, column=col)
            return v.astype(np.int64)
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if dtype.kind == "O" and s.map(lambda x: isinstance(x, bytes | bytearray)).any():
        raise _fail("encoding", "column holds undecodable bytes", column=col, fix="Save the file as UTF-8.")
    num = pd.to_numeric(s, errors="coerce")
    text = s.astype("str").str.strip().str.lower()
    bad = (num.isna() & s.notna() & ~text.isin(_NULL_WORDS)).to_numpy()
    if bad.any():
        raw = s.iloc[int(np.argmax(bad))]
        raise _fail("unparsable", f"cannot read {raw!r} as a number", mask=bad, ts=ts, column=col, value=str(raw))
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def normalize_ohlcv(raw: pd.DataFrame) -> pd.DataFrame:
    """Map columns, parse timestamps/numbers, validate (before the downcast) and return the normalized frame."""
    if not isinstance(raw, pd.DataFrame):
        raise DataInvalid(f"OHLCV data invalid: expected a pandas DataFrame, got {type(raw).__name__}",
                          rule="type")
    if isinstance(raw.columns, pd.MultiIndex) or isinstance(raw.index, pd.MultiIndex):
        raise _fail("multiindex", "MultiIndex columns/index are not supported",
                    fix="Pass a single-symbol frame with flat columns.")
    ts_pos, named, found = _resolve_columns(list(raw.columns))
    if ts_pos is not None and (named or not isinstance(raw.index, pd.DatetimeIndex)):
        ts_src, ts_col = raw.iloc[:, ts_pos], str(raw.columns[ts_pos])
    elif isinstance(raw.index, pd.DatetimeIndex) or _key(raw.index.name or "") in _TS_NAMES:
        ts_src, ts_col = pd.Series(raw.index), str(raw.index.name or "index")
    else:
        raise _fail("missing_column", f"no timestamp column (looked for {', '.join(_TS_NAMES)} or a "
                    f"DatetimeIndex; found {list(map(str, raw.columns))})", column="ts",
                    fix="Name the timestamp column 'timestamp' (or 'date'/'ts').")
    if len(raw) == 0:
        raise _fail("no_rows", "the dataset has no rows", fix="Provide at least one bar.")
    ts = _parse_ts(ts_src.reset_index(drop=True), ts_col)
    cols: dict[str, np.ndarray] = {"ts": ts}
    for name in _layout(found)[1:]:
        cols[name] = _parse_number(raw.iloc[:, found[name]].reset_index(drop=True), name, ts)
    _check_bars(cols)
    # fresh arrays (never views of the caller's data), one block per column: no consolidation copy
    return pd.DataFrame({c: v.astype(np.int64 if c in ("ts", "volume") else np.float32, copy=True)
                         for c, v in cols.items()}, copy=False)


# --------------------------------------------------------------------------- validation
def validate_ohlcv(frame: pd.DataFrame) -> None:
    """Check every rule on a frame with canonical column names (float64 or float32 prices)."""
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail("missing_column", f"missing column(s) {missing}", column=missing[0],
                    fix="Pass a frame with the canonical columns (see normalize_ohlcv).")
    if len(frame) == 0:
        raise _fail("no_rows", "the dataset has no rows", fix="Provide at least one bar.")
    prices = [c for c in ("open", "high", "low", "close", "adj_close") if c in frame.columns]
    for c in ("ts", *prices, "volume"):
        if not pd.api.types.is_numeric_dtype(frame[c].dtype) or frame[c].dtype.kind == "b":
            raise _fail("dtype", f"column has dtype {frame[c].dtype}, expected numbers", column=c,
                        fix="Run normalize_ohlcv on raw data first.")
    if frame["ts"].dtype.kind != "i":
        raise _fail("dtype", f"ts has dtype {frame['ts'].dtype}, expected int64 epoch ns", column="ts",
                    fix="Run normalize_ohlcv on raw data first.")
    _check_bars({c: frame[c].to_numpy() for c in ("ts", *prices, "volume")})


def _check_bars(cols: dict[str, np.ndarray]) -> None:
    """The row rules over canonical column arrays (ts int64; prices/volume any numeric dtype)."""
    ts = cols["ts"].astype(np.int64, copy=False)
    step = np.diff(ts)
    dup = np.concatenate([[False], step == 0])
    if dup.any():
        raise _fail("ts_unique", "duplicate timestamp", mask=dup, ts=ts, column="ts",
                    fix="Remove the duplicate bars (keep one bar per timestamp).")
    dec = np.concatenate([[False], step < 0])
    if dec.any():
        raise _fail("ts_increasing", "timestamp earlier than the previous bar", mask=dec, ts=ts, column="ts",
                    fix="Sort the bars by time, oldest first.")
    prices = [c for c in cols if c not in ("ts", "volume")]
    val = {c: np.asarray(cols[c], dtype=np.float64) for c in (*prices, "volume")}
    for c, v in val.items():
        bad = ~np.isfinite(v)
        if bad.any():
            raise _fail("finite", "value is NaN, missing or infinite", mask=bad, ts=ts, column=c,
                        value=str(v[np.argmax(bad)]))
    for c in prices:
        v = val[c]
        if (bad := v <= 0).any():
            raise _fail("positive_price", f"price must be > 0, got {v[np.argmax(bad)]:g}", mask=bad, ts=ts,
                        column=c, value=float(v[np.argmax(bad)]))
        if (bad := (v > _F32_MAX) | (v < _F32_TINY)).any():
            raise _fail("float32_range", f"price {v[np.argmax(bad)]:g} does not fit float32 "
                        f"(max {_F32_MAX:.6g})", mask=bad, ts=ts, column=c, value=float(v[np.argmax(bad)]))
    o, h, lo, c_ = val["open"], val["high"], val["low"], val["close"]
    rules = (("high_ge_low", "high", h < lo, "high < low"),
             ("high_ge_open_close", "high", h < np.maximum(o, c_), "high < max(open, close)"),
             ("low_le_open_close", "low", lo > np.minimum(o, c_), "low > min(open, close)"))
    for rule, col, bad, what in rules:
        if bad.any():
            i = int(np.argmax(bad))
            raise _fail(rule, f"{what} (open={o[i]:g}, high={h[i]:g}, low={lo[i]:g}, close={c_[i]:g})",
                        mask=bad, ts=ts, column=col)
    vol = val["volume"]
    for rule, bad, what in (("volume_non_negative", vol < 0, "volume is negative"),
                            ("volume_integral", vol != np.floor(vol), "volume is not a whole number"),
                            ("volume_range", vol >= 2.0**63, "volume exceeds int64")):
        if bad.any():
            raise _fail(rule, f"{what}: {vol[np.argmax(bad)]:g}", mask=bad, ts=ts, column="volume",
                        value=float(vol[np.argmax(bad)]))


# --------------------------------------------------------------------------- hash and anomalies
def _hash_layout(frame: pd.DataFrame) -> tuple[str, ...]:
    layout = OHLCV_COLUMNS[:5] + (("adj_close",) if "adj_close" in frame.columns else ()) + ("volume",)
    if tuple(frame.columns) != layout:
        raise _fail("layout", f"columns {list(frame.columns)} are not the normalized layout {list(layout)}",
                    fix="Hash the output of normalize_ohlcv.")
    return layout


def compute_data_hash(frame: pd.DataFrame) -> str:
    """sha256 of the normalized bars (see the module docstring for the exact rule)."""
    layout = _hash_layout(frame)
    dtypes = ["<i8" if c in ("ts", "volume") else "<f4" for c in layout]
    header = {"format": HASH_FORMAT, "columns": list(layout), "dtypes": dtypes, "n_bars": len(frame)}
    h = hashlib.sha256(canonical_json(header).encode("utf-8"))
    for c, dt in zip(layout, dtypes, strict=True):
        h.update(np.ascontiguousarray(frame[c].to_numpy(), dtype=np.dtype(dt)).data)
    return h.hexdigest()


def anomaly_counters(frame: pd.DataFrame) -> dict[str, int]:
    """``{"gaps", "zero_volume", "flat_bars"}`` counts (see the module docstring); zeros when clean."""
    ts = frame["ts"].to_numpy(dtype=np.int64)
    step = np.diff(ts)
    gaps = int(np.count_nonzero(step > GAP_FACTOR * float(np.median(step)))) if step.size else 0
    high = frame["high"].to_numpy(dtype=np.float32)
    low = frame["low"].to_numpy(dtype=np.float32)
    return {"gaps": gaps, "zero_volume": int(np.count_nonzero(frame["volume"].to_numpy() == 0)),
            "flat_bars": int(np.count_nonzero(high == low))}


def dataset_from_frame(raw: pd.DataFrame, source: str | None = None, file_sha256: str | None = None) -> Dataset:
    """Normalize + validate ``raw`` and wrap it with its data_hash and anomaly counters."""
    frame = normalize_ohlcv(raw)
    return Dataset(frame, compute_data_hash(frame), anomaly_counters(frame), source, file_sha256)
