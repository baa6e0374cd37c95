"""OHLCV ingest: normalization, every refusal rule, data_hash, anomaly counters, CSV/Parquet parity."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from _data_helpers import CSV_HEADER, DAY_NS, T0_NS, bars, csv_text, valid_frames, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import (
    OHLCV_COLUMNS,
    Dataset,
    anomaly_counters,
    compute_data_hash,
    dataset_from_frame,
    load_ohlcv,
    normalize_ohlcv,
    validate_ohlcv,
)
from alphaforge.data import readers as data_readers
from alphaforge.errors import DataInvalid

GOOD = "2020-01-01,10,11,9,10.5,100"
ISO = ["2020-01-01T00:00:00+00:00", "2020-01-02T00:00:00+00:00", "2020-01-03T00:00:00+00:00"]


def _set(frame: pd.DataFrame, col: str, row: int, value: Any) -> pd.DataFrame:
    """A copy of ``frame`` with one cell replaced (dtype kept)."""
    arr = frame[col].to_numpy().copy()
    arr[row] = value
    return frame.assign(**{col: arr})


# --------------------------------------------------------------------------- shape and dtypes
def test_normalized_frame_layout_and_dtypes() -> None:
    frame = normalize_ohlcv(bars(6, adj_close=True))
    assert tuple(frame.columns) == ("ts", "open", "high", "low", "close", "adj_close", "volume")
    assert isinstance(frame.index, pd.RangeIndex) and list(frame.index) == list(range(6))
    assert frame["ts"].dtype == np.int64 and frame["volume"].dtype == np.int64
    for col in ("open", "high", "low", "close", "adj_close"):
        assert frame[col].dtype == np.float32
    assert frame["ts"].iloc[0] == T0_NS and int(np.diff(frame["ts"])[0]) == DAY_NS
    assert tuple(normalize_ohlcv(bars(3)).columns) == OHLCV_COLUMNS


def test_normalized_frame_owns_its_memory() -> None:
    ns = T0_NS + DAY_NS * np.arange(5, dtype=np.int64)
    volume = np.arange(5, dtype=np.int64)
    raw = pd.DataFrame({"ts": ns, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": volume})
    ds = dataset_from_frame(raw)
    for col, arr in (("ts", ns), ("volume", volume)):
        assert not np.shares_memory(ds.frame[col].to_numpy(), arr), col
    ns[0] = 0
    assert ds.frame["ts"].iloc[0] == T0_NS and compute_data_hash(ds.frame) == ds.data_hash


def test_dataset_fields(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    bars(7).to_csv(path, index=False)
    ds = load_ohlcv(path)
    assert isinstance(ds, Dataset) and ds.n_bars == 7 and ds.source == str(path)
    assert len(ds.data_hash) == 64 and int(ds.data_hash, 16) >= 0
    assert set(ds.anomaly_counters) == {"gaps", "zero_volume", "flat_bars"}
    assert dataset_from_frame(bars(7)).source is None
    assert dataset_from_frame(bars(7)).data_hash == ds.data_hash


# --------------------------------------------------------------------------- column and timestamp variants
@pytest.mark.parametrize("names", [
    ("Date", "Open", "High", "Low", "Close", "Volume"),
    ("timestamp", "open", "high", "low", "close", "volume"),
    ("DATETIME", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"),
    ("Time", "oPeN", "High", "low", "Close", "Volume"),
    ("ts", " open ", "high", "low", "close", "volume"),
])
def test_column_name_variants_give_the_same_bars(names: tuple[str, ...]) -> None:
    raw = bars(5)
    raw.columns = pd.Index(names)
    assert dataset_from_frame(raw).data_hash == dataset_from_frame(bars(5)).data_hash


@pytest.mark.parametrize("adj", ["Adj Close", "adj_close", "ADJ-CLOSE", "AdjClose"])
def test_adj_close_variants(adj: str) -> None:
    raw = bars(4, adj_close=True).rename(columns={"Adj Close": adj})
    frame = normalize_ohlcv(raw)
    assert list(frame.columns).index("adj_close") == 5
    np.testing.assert_array_equal(frame["adj_close"], raw[adj].to_numpy(np.float32))


def test_extra_columns_ignored_and_order_free() -> None:
    raw = bars(4)
    shuffled = raw[["Volume", "Close", "timestamp", "Low", "High", "Open"]].assign(note="x", Symbol="NVDA")
    assert dataset_from_frame(shuffled).data_hash == dataset_from_frame(raw).data_hash


@pytest.mark.parametrize("stamps", [
    ["2020-01-01", "2020-01-02", "2020-01-03"],
    ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2020-01-03T00:00:00Z"],
    ["2020-01-01 00:00:00", "2020-01-02 00:00:00", "2020-01-03 00:00:00"],
    ["2020-01-01T02:00:00+02:00", "2020-01-01T19:00:00-05:00", "2020-01-03T00:00:00.000000+00:00"],
    ["1577836800", "1577923200", "1578009600"],
    ["1577836800000", "1577923200000", "1578009600000"],
    ["1577836800000000", "1577923200000000", "1578009600000000"],
    ["1577836800000000000", "1577923200000000000", "1578009600000000000"],
    ["01/01/2020", "01/02/2020", "01/03/2020"],
])
def test_timestamp_formats_in_csv(tmp_path: Path, stamps: list[str]) -> None:
    rows = [f"{s},10,11,9,10.5,100" for s in stamps]
    ds = load_ohlcv(write_csv(tmp_path / "x.csv", csv_text(*rows)))
    assert ds.frame["ts"].tolist() == [T0_NS, T0_NS + DAY_NS, T0_NS + 2 * DAY_NS]


@pytest.mark.parametrize("unit,scale", [("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
@given(seconds=st.integers(100_000_000, 9_000_000_000))  # 1973 .. 2255
@settings(max_examples=25, deadline=None)
def test_epoch_unit_inferred_from_magnitude(unit: str, scale: int, seconds: int) -> None:
    ns = np.array([seconds, seconds + 60], dtype=np.int64) * 10**9
    raw = bars(2).assign(timestamp=ns // scale)
    assert normalize_ohlcv(raw)["ts"].tolist() == ns.tolist()


def test_tz_aware_converted_naive_taken_as_utc() -> None:
    ny = bars(3).assign(timestamp=pd.date_range("2020-01-01 09:30", periods=3, freq="D", tz="America/New_York"))
    utc_ns = pd.date_range("2020-01-01 14:30", periods=3, freq="D", tz="UTC").as_unit("ns").asi8
    assert normalize_ohlcv(ny)["ts"].tolist() == utc_ns.tolist()
    naive = bars(3).assign(timestamp=pd.date_range("2020-01-01 14:30", periods=3, freq="D"))
    assert normalize_ohlcv(naive)["ts"].tolist() == utc_ns.tolist()


def test_datetime_index_and_date_objects() -> None:
    raw = bars(4)
    by_index = raw.set_index("timestamp")
    by_index.index.name = None
    assert dataset_from_frame(by_index).data_hash == dataset_from_frame(raw).data_hash
    dates = raw.assign(timestamp=[t.date() for t in raw["timestamp"]])
    assert dataset_from_frame(dates).data_hash == dataset_from_frame(raw).data_hash
    secs = raw.assign(timestamp=raw["timestamp"].dt.tz_localize(None).astype("datetime64[s]"))
    assert dataset_from_frame(secs).data_hash == dataset_from_frame(raw).data_hash


def test_float_volume_integral_accepted_and_bom_and_unnamed_index(tmp_path: Path) -> None:
    text = "\ufeff,Open,High,Low,Close,Volume\n2020-01-01,10,11,9,10.5,1234.0\n2020-01-02,10,11,9,10.5,7\n"
    ds = load_ohlcv(write_csv(tmp_path / "x.csv", text))
    assert ds.frame["volume"].tolist() == [1234, 7] and ds.frame["volume"].dtype == np.int64
    assert ds.frame["ts"].tolist() == [T0_NS, T0_NS + DAY_NS]


# --------------------------------------------------------------------------- CSV / Parquet parity
def test_csv_parquet_and_gzip_give_the_same_hash(tmp_path: Path) -> None:
    raw = bars(50, adj_close=True)
    raw.to_csv(tmp_path / "a.csv", index=False)
    with gzip.open(tmp_path / "a.csv.gz", "wt", encoding="utf-8") as fh:
        raw.to_csv(fh, index=False)
    raw.to_parquet(tmp_path / "a.parquet", index=False)
    raw.set_index("timestamp").to_parquet(tmp_path / "indexed.pq")
    raw.set_index("timestamp").rename_axis(None).to_parquet(tmp_path / "unnamed_index.parquet")
    hashes = {p: load_ohlcv(tmp_path / p).data_hash for p in
              ("a.csv", "a.csv.gz", "a.parquet", "indexed.pq", "unnamed_index.parquet")}
    assert len(set(hashes.values())) == 1, hashes
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "a.csv").frame, load_ohlcv(tmp_path / "a.parquet").frame)


def test_parquet_reads_only_needed_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bars(5).assign(notes="big text", other=1.5).to_parquet(tmp_path / "x.parquet", index=False)
    seen: list[Any] = []
    real = pq.read_table

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("columns"))
        return real(*args, **kwargs)

    monkeypatch.setattr(data_readers.pq, "read_table", spy)
    load_ohlcv(tmp_path / "x.parquet")
    assert seen and sorted(seen[0]) == sorted(["timestamp", "Open", "High", "Low", "Close", "Volume"])


@given(frame=valid_frames())
@settings(max_examples=30, deadline=None)
def test_any_valid_frame_round_trips_csv_and_parquet(frame: pd.DataFrame) -> None:
    expected = dataset_from_frame(frame)
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_csv(Path(tmp) / "x.csv", index=False)
        frame.to_parquet(Path(tmp) / "x.parquet", index=False)
        for name in ("x.csv", "x.parquet"):
            got = load_ohlcv(Path(tmp) / name)
            pd.testing.assert_frame_equal(got.frame, expected.frame)
            assert got.data_hash == expected.data_hash and got.anomaly_counters == expected.anomaly_counters
    again = normalize_ohlcv(expected.frame)  # idempotent on its own output
    pd.testing.assert_frame_equal(again, expected.frame)
    validate_ohlcv(expected.frame)


# --------------------------------------------------------------------------- refusals
ROW2 = {"row": 2, "ts": ISO[2]}
REFUSALS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("empty file", "", "empty_file", {}),
    ("blank file", "\n  \n", "empty_file", {}),
    ("header only", CSV_HEADER, "no_rows", {}),
    ("no volume column", "ts,open,high,low,close\n2020-01-01,10,11,9,10.5\n", "missing_column",
     {"column": "volume"}),
    ("no timestamp column", "open,high,low,close,volume\n10,11,9,10.5,1\n", "missing_column", {"column": "ts"}),
    ("two timestamp columns", "date,time,open,high,low,close,volume\n2020-01-01,09:30,10,11,9,10.5,1\n",
     "ambiguous_column", {}),
    ("two close columns", "ts,open,high,low,close,Close,volume\n2020-01-01,10,11,9,10.5,10.5,1\n",
     "ambiguous_column", {}),
    ("unparsable price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,abc,9,10.5,1"),
     "unparsable", {**ROW2, "column": "high", "value": "abc"}),
    ("unparsable volume", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,9,10.5,1k"),
     "unparsable", {**ROW2, "column": "volume"}),
    ("unparsable timestamp", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "yesterday,10,11,9,10.5,1"),
     "unparsable", {"row": 2, "column": "ts", "value": "yesterday"}),
    ("missing timestamp", csv_text(GOOD, ",10,11,9,10.5,1"), "ts_missing", {"row": 1}),
    ("missing price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,,10.5,1"),
     "finite", {**ROW2, "column": "low"}),
    ("NaN price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,NaN,11,9,10.5,1"),
     "finite", {**ROW2, "column": "open"}),
    ("inf price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,inf,9,10.5,1"),
     "finite", {**ROW2, "column": "high"}),
    ("zero price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,0,10.5,1"),
     "positive_price", {**ROW2, "column": "low"}),
    ("negative price", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,-10,11,-12,-10.5,1"),
     "positive_price", {**ROW2, "column": "open"}),
    ("high below open/close", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,10.2,9,10.5,1"),
     "high_ge_open_close", {**ROW2, "column": "high"}),
    ("low above open/close", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,10.2,10.5,1"),
     "low_le_open_close", {**ROW2, "column": "low"}),
    ("high below low", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,9,11,10.5,1"),
     "high_ge_low", {**ROW2, "column": "high"}),
    ("negative volume", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,9,10.5,-5"),
     "volume_non_negative", {**ROW2, "column": "volume"}),
    ("fractional volume", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,9,10.5,2.5"),
     "volume_integral", {**ROW2, "column": "volume"}),
    ("duplicate timestamp", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-02,10,11,9,10.5,1"),
     "ts_unique", {"row": 2, "ts": ISO[1], "column": "ts"}),
    ("decreasing timestamp", csv_text("2020-01-03,10,11,9,10.5,1", "2020-01-02,10,11,9,10.5,1"),
     "ts_increasing", {"row": 1, "ts": ISO[1], "column": "ts"}),
    ("float32 overflow", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,1e39,9,10.5,1"),
     "float32_range", {**ROW2, "column": "high"}),
    ("float32 underflow", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11,1e-50,10.5,1"),
     "float32_range", {**ROW2, "column": "low"}),
    ("timestamp out of ns range", csv_text("2300-01-01,10,11,9,10.5,1"), "ts_range", {"row": 0}),
    ("timestamp text out of ns range", csv_text("2020-01-01,10,11,9,10.5,1", "2300-01-01T00:00:00Z,10,11,9,10.5,1"),
     "ts_range", {"row": 1}),
    ("ragged last line", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1", "2020-01-03,10,11"), "csv_ragged",
     {"line": 4}),
    ("extra field", csv_text(GOOD, "2020-01-02,10,11,9,10.5,1,7"), "csv_ragged", {"line": 3}),
]


@pytest.mark.parametrize("label,text,rule,context", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(tmp_path: Path, label: str, text: str, rule: str, context: dict[str, Any]) -> None:
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataInvalid) as info:
        load_ohlcv(path)
    exc = info.value
    assert exc.error_code == "DATA_INVALID" and exc.exit_code == 3
    assert exc.context["rule"] == rule and f"rule {rule}" in exc.message
    for key, value in context.items():
        assert exc.context[key] == value, (key, exc.context)
    if context.get("ts"):
        assert context["ts"] in exc.message and f"row {context['row']}" in exc.message
    if "column" in context:
        assert repr(context["column"]) in exc.message
    assert "Traceback" not in exc.message and len(exc.message) < 600


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"ts,open,high,low,close,volume,note\n2020-01-01,10,11,9,10.5,1,caf\xe9\n")
    with pytest.raises(DataInvalid, match=r"not UTF-8 .*line 2.*UTF-8") as info:
        load_ohlcv(path)
    assert info.value.context["rule"] == "encoding"


@pytest.mark.parametrize("name,payload,rule", [
    ("x.parquet", b"PAR1 not really parquet", "unreadable"),
    ("x.csv.gz", gzip.compress(b"ts,open,high,low,close,volume\n" + b"2020-01-01,10,11,9,10.5,1\n" * 50)[:40],
     "unreadable"),
    ("x.xlsx", b"whatever", "unsupported_format"),
])
def test_bad_files(tmp_path: Path, name: str, payload: bytes, rule: str) -> None:
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DataInvalid) as info:
        load_ohlcv(tmp_path / name)
    assert info.value.context["rule"] == rule
    with pytest.raises(DataInvalid, match="no such file"):
        load_ohlcv(tmp_path / "missing.csv")


def test_late_bad_value_in_a_large_csv_is_located(tmp_path: Path) -> None:
    n = 60_000  # > pyarrow's 1 MiB block: the error surfaces after type inference, on the text re-read
    raw = bars(n, step_ns=60 * 10**9)
    text = raw.to_csv(index=False).splitlines()
    text[-1] = text[-1].replace(text[-1].split(",")[3], "oops", 1)
    with pytest.raises(DataInvalid) as info:
        load_ohlcv(write_csv(tmp_path / "big.csv", "\n".join(text) + "\n"))
    assert info.value.context["row"] == n - 1 and info.value.context["column"] == "low"
    assert info.value.context["ts"] == pd.Timestamp(raw["timestamp"].iloc[-1]).isoformat()


def test_frame_level_refusals() -> None:
    with pytest.raises(DataInvalid, match="MultiIndex"):
        normalize_ohlcv(bars(3).set_index(["timestamp", "Volume"]))
    with pytest.raises(DataInvalid, match="no timestamp column"):
        normalize_ohlcv(bars(3).drop(columns="timestamp"))
    with pytest.raises(DataInvalid, match="no rows"):
        normalize_ohlcv(bars(3).iloc[:0])
    with pytest.raises(DataInvalid, match="boolean"):
        normalize_ohlcv(bars(2).assign(Volume=[True, False]))
    with pytest.raises(DataInvalid, match="int64-nanosecond range") as info:
        normalize_ohlcv(bars(2).assign(timestamp=["2020-01-01", "2300-01-01"]))
    assert info.value.context["row"] == 1
    with pytest.raises(DataInvalid, match="DataFrame"):
        normalize_ohlcv([1, 2, 3])  # type: ignore[arg-type]


def test_overflow_is_caught_before_the_downcast() -> None:
    raw = bars(3)
    raw.loc[1, "High"] = 1e300
    with pytest.raises(DataInvalid) as info:
        normalize_ohlcv(raw)
    assert info.value.context["rule"] == "float32_range" and info.value.context["row"] == 1


def test_validate_ohlcv_on_normalized_frames() -> None:
    frame = normalize_ohlcv(bars(5))
    validate_ohlcv(frame)
    broken = _set(frame, "high", 3, float(frame["low"].iloc[3]) - 0.5)
    with pytest.raises(DataInvalid) as info:
        validate_ohlcv(broken)
    assert info.value.context["rule"] == "high_ge_low" and info.value.context["row"] == 3
    with pytest.raises(DataInvalid, match="missing column"):
        validate_ohlcv(frame.drop(columns="volume"))
    with pytest.raises(DataInvalid, match="expected int64"):
        validate_ohlcv(frame.assign(ts=frame["ts"].astype(np.float64)))
    with pytest.raises(DataInvalid, match="expected numbers"):
        validate_ohlcv(frame.assign(close="x"))


def test_many_bad_rows_are_counted() -> None:
    raw = bars(10)
    raw.loc[[2, 5, 7], "Volume"] = -1
    with pytest.raises(DataInvalid, match="3 rows break this rule") as info:
        normalize_ohlcv(raw)
    assert info.value.context["row"] == 2 and info.value.context["n_rows"] == 3


# --------------------------------------------------------------------------- data_hash
def test_data_hash_sensitivity() -> None:
    frame = normalize_ohlcv(bars(20, adj_close=True))
    base = compute_data_hash(frame)
    assert compute_data_hash(frame.copy()) == base
    for col in ("open", "high", "low", "close", "adj_close"):
        one_ulp = np.nextafter(frame[col].to_numpy()[7], np.float32(np.inf), dtype=np.float32)
        assert compute_data_hash(_set(frame, col, 7, one_ulp)) != base, col
    for col in ("ts", "volume"):
        assert compute_data_hash(_set(frame, col, 19, frame[col].to_numpy()[19] + 1)) != base, col
    assert compute_data_hash(frame.drop(columns="adj_close")) != base
    assert compute_data_hash(frame.iloc[:19].reset_index(drop=True)) != base


def test_data_hash_is_the_documented_rule() -> None:
    import hashlib
    import json

    frame = normalize_ohlcv(bars(4))
    header = {"format": "alphaforge-ohlcv-v1", "columns": list(OHLCV_COLUMNS),
              "dtypes": ["<i8", "<f4", "<f4", "<f4", "<f4", "<i8"], "n_bars": 4}
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for col in OHLCV_COLUMNS:
        h.update(frame[col].to_numpy().astype("<i8" if col in ("ts", "volume") else "<f4").tobytes())
    assert compute_data_hash(frame) == h.hexdigest()
    with pytest.raises(DataInvalid, match="normalized layout"):
        compute_data_hash(frame[["ts", "close", "open", "high", "low", "volume"]])


# --------------------------------------------------------------------------- anomaly counters
def test_anomaly_counters_on_crafted_data() -> None:
    minute = 60 * 10**9
    offsets = [0, 1, 2, 3, 8, 9, 12, 13, 14, 15]  # spacings 1,1,1,5,1,3,1,1,1: median 1 -> only 5 is a gap
    raw = bars(10).assign(timestamp=T0_NS + minute * np.array(offsets, dtype=np.int64))
    raw.loc[[1, 4], "Volume"] = 0
    raw.loc[6, ["Open", "High", "Low", "Close"]] = 50.0
    counters = anomaly_counters(normalize_ohlcv(raw))
    assert counters == {"gaps": 1, "zero_volume": 2, "flat_bars": 1}
    clean = bars(10).assign(Volume=5)
    assert dataset_from_frame(clean).anomaly_counters == {"gaps": 0, "zero_volume": 0, "flat_bars": 0}
    assert anomaly_counters(normalize_ohlcv(bars(1).assign(Volume=0))) == {"gaps": 0, "zero_volume": 1,
                                                                           "flat_bars": 0}
