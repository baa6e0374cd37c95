"""Reading OHLCV files: CSV (pyarrow's reader, UTF-8 and ragged-line checks) and Parquet (only the needed
columns). Normalization, validation and hashing are in :mod:`alphaforge.data.normalize`.

A file is read into memory once and parsed from those bytes, so the sha256 of the file that a dataset records
(``Dataset.file_sha256``) is the digest of exactly the bytes that were parsed."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from alphaforge.data.normalize import _NON_SPACE, Dataset, _fail, _resolve_columns, dataset_from_frame
from alphaforge.errors import DataInvalid
from alphaforge.hashing import BackgroundSha256


def _read_csv(path: Path, raw: bytes) -> pd.DataFrame:
    try:
        gzipped = path.name.lower().endswith(".gz")
        data = pa.input_stream(pa.BufferReader(raw), compression="gzip").read() if gzipped else raw
    except (OSError, pa.ArrowException) as exc:
        raise _fail("unreadable", f"cannot read {str(path)!r}: {exc}", fix="Check the file (is it a valid "
                    "gzip if it ends in .gz?).") from None
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    _check_utf8(data, path)
    if _NON_SPACE.search(data, start) is None:
        raise _fail("empty_file", f"{str(path)!r} is empty", fix="Provide a header line and at least one bar.")
    end = data.find(b"\n", start)
    header_line = data[start:end if end >= 0 else len(data)].decode("utf-8").rstrip("\r")
    names = next(csv.reader([header_line]))
    ts_pos, _, found = _resolve_columns(names)
    if ts_pos is None:
        raise _fail("missing_column", f"no timestamp column in {names}", column="ts",
                    fix="Name the timestamp column 'timestamp' (or 'date'/'ts').")
    wanted = ([names[ts_pos]] if ts_pos is not None else []) + [names[p] for p in found.values()]
    buf = pa.py_buffer(data)[start:]
    table = _arrow_csv(buf, wanted, {names[p]: pa.float64() for c, p in found.items() if c != "volume"})
    if table is None:  # type inference broke across blocks: re-read as text, parse with row-level errors
        table = _arrow_csv(buf, wanted, {n: pa.string() for n in wanted})
        assert table is not None
    del buf, data
    if table.num_rows == 0:
        raise _fail("no_rows", f"{str(path)!r} has a header but no bars", fix="Provide at least one bar.")
    return _to_pandas(table)


def _check_utf8(data: bytes, path: Path) -> None:
    """Refuse a non-UTF-8 file (zero-copy check by Arrow; Python finds the offending byte on failure)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataInvalid(f"OHLCV data invalid: {str(path)!r} is not UTF-8 (byte 0x{data[exc.start]:02x} on "
                          f"line {line}) [rule encoding]. Re-save the file as UTF-8.",
                          rule="encoding", line=line, row=None, column=None) from None


# Arrow's reader thread pools are not used: a process that exits soon after a threaded read can abort in
# Arrow's thread-pool teardown ("terminate called without an active exception", exit 134) — reproduced here
# in about 1 of 20 short CLI runs under load. Single-threaded reads cost ~0.15 s per 1M CSV bars.
_NO_THREADS = pacsv.ReadOptions(use_threads=False)


def _arrow_csv(buf: pa.Buffer, wanted: list[str], types: dict[str, pa.DataType]) -> pa.Table | None:
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types=types, strings_can_be_null=True)
    try:
        return pacsv.read_csv(pa.BufferReader(buf), read_options=_NO_THREADS, convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "conversion error" in str(exc) and any(t != pa.string() for t in types.values()):
            return None
        rows: list[Any] = []

        def keep(row: Any) -> str:
            rows.append(row)
            return "error"

        parse = pacsv.ParseOptions(invalid_row_handler=keep)
        try:
            pacsv.read_csv(pa.BufferReader(buf), parse_options=parse, convert_options=convert,
                           read_options=_NO_THREADS)
        except pa.ArrowInvalid:
            pass
        if rows:
            r = rows[0]
            raise DataInvalid(f"OHLCV data invalid: line {r.number}: expected {r.expected_columns} fields, got "
                              f"{r.actual_columns} ({r.text!r}) [rule csv_ragged]. The file looks truncated "
                              "or has a malformed line; fix or remove that line.",
                              rule="csv_ragged", line=r.number, row=None, column=None, value=r.text) from None
        raise DataInvalid(f"OHLCV data invalid: the CSV cannot be parsed ({exc}) [rule csv_malformed]. "
                          "Check the delimiter (must be ',') and the quoting.", rule="csv_malformed",
                          row=None, column=None) from None


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with one block per column (zero-copy where possible), freeing Arrow memory as it goes."""
    return table.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True, use_threads=False)


def _read_parquet(path: Path, raw: bytes) -> pd.DataFrame:
    try:
        schema = pq.read_schema(pa.BufferReader(raw))
        names = list(schema.names)
        ts_pos, _, found = _resolve_columns(names)
        if ts_pos is None:
            index_cols = (schema.pandas_metadata or {}).get("index_columns", [])
            stored = [c for c in index_cols if isinstance(c, str) and c in names]
            ts_pos = names.index(stored[0]) if stored else None
        if ts_pos is None:
            raise _fail("missing_column", f"no timestamp column in {names}", column="ts",
                        fix="Name the timestamp column 'timestamp' (or store it as the index).")
        wanted = [names[ts_pos]] + [names[p] for p in found.values()]
        table = pq.read_table(pa.BufferReader(raw), columns=wanted, use_pandas_metadata=False, use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise _fail("unreadable", f"cannot read Parquet file {str(path)!r}: {exc}",
                    fix="Check that the file is a complete Parquet file.") from None
    return _to_pandas(table.replace_schema_metadata(None))


def _read_file(p: Path) -> tuple[pd.DataFrame, str]:
    """The raw frame of an OHLCV file (only the needed columns), before normalization, and the sha256 of the
    file's bytes that were parsed."""
    name = p.name.lower()
    if not p.is_file():
        raise _fail("file_not_found", f"no such file: {str(p)!r}", fix="Check the path.")
    if name.endswith((".csv", ".csv.gz")):
        reader = _read_csv
    elif name.endswith((".parquet", ".pq")):
        reader = _read_parquet
    else:
        raise _fail("unsupported_format", f"unsupported file type {p.name!r}",
                    fix="Use .csv, .csv.gz, .parquet or .pq.")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise _fail("unreadable", f"cannot read {str(p)!r}: {exc}", fix="Check the file's permissions.") from None
    # the bytes are hashed on a thread while they are parsed (hashlib and Arrow's readers release the GIL): the
    # digest costs no wall time (it was 10-15% of a load: ~6 ms at 200k CSV bars)
    digest = BackgroundSha256(raw)
    try:
        frame = reader(p, raw)
    finally:
        file_sha256 = digest.hexdigest()  # waited for on a failed parse too: no hashing outlives the load
    return frame, file_sha256


def read_ohlcv_file(p: Path) -> pd.DataFrame:
    """The raw frame of an OHLCV file (only the needed columns), before normalization."""
    return _read_file(p)[0]


def load_ohlcv(path: str | os.PathLike[str]) -> Dataset:
    """Load, normalize and validate an OHLCV file (.csv, .csv.gz, .parquet, .pq)."""
    p = Path(path)
    raw, file_sha256 = _read_file(p)
    return dataset_from_frame(raw, source=str(p), file_sha256=file_sha256)
