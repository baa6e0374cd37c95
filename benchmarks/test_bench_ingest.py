"""OHLCV ingest: ``load_ohlcv`` of 1M bars (CI: 200k) from CSV and Parquet against bare pandas.

* CSV: ours (pyarrow reader + full validation + data_hash + anomaly counters) vs the baseline
  ``pandas.read_csv`` + ``pd.to_datetime`` + ``astype`` with no validation at all.
* Parquet vs CSV: the same bars through ``load_ohlcv``; Parquet reads only the needed columns.
* Parquet: ours vs the baseline ``pandas.read_parquet`` + ``astype`` (no validation).

Peak memory of each path is measured in a fresh interpreter as the growth of the peak resident set
(``VmHWM`` from ``/proc/self/status``, which, unlike ``ru_maxrss``, is not inherited from the forking pytest
process) during the load, after imports; it covers Arrow's allocator too. Recorded in ``extra_info``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import best_time, report, size

from alphaforge.data import load_ohlcv

N_BARS = size(1_000_000, 200_000)

_PEAK_SCRIPT = """
import json, sys
from test_bench_ingest import LOADERS
def hwm_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
fn = LOADERS[sys.argv[1]]
before = hwm_kb()
fn(sys.argv[2])
print(json.dumps({"peak_mb": (hwm_kb() - before) / 1024}))
"""


def bare_pandas_csv(path: str | Path) -> pd.DataFrame:
    """The baseline: plain pandas, no validation, no hash."""
    df = pd.read_csv(path)
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df.astype({"open": np.float32, "high": np.float32, "low": np.float32, "close": np.float32,
                      "volume": np.int64})


def bare_pandas_parquet(path: str | Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    return df.astype({"open": np.float32, "high": np.float32, "low": np.float32, "close": np.float32,
                      "volume": np.int64})


#: what a path is loaded with: ``"ours"`` (load_ohlcv) or a bare pandas read
LOADERS: dict[str, Callable[[str | Path], Any]] = {"ours": load_ohlcv, "csv": bare_pandas_csv,
                                                   "parquet": bare_pandas_parquet}


def _paired(ours: Callable[[], Any], baseline: Callable[[], Any], rounds: int = 7) -> tuple[float, float]:
    """Best times of ``ours`` and ``baseline`` measured alternately (load swings hit both alike)."""
    a, b = float("inf"), float("inf")
    for _ in range(rounds):
        a, b = min(a, best_time(ours, rounds=1)), min(b, best_time(baseline, rounds=1))
    return a, b


def _peak_mb(kind: str, path: Path) -> float | None:
    if not Path("/proc/self/status").exists():
        return None
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, kind, str(path)], cwd=Path(__file__).parent,
                         capture_output=True, text=True, check=True, timeout=300)
    return round(float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]), 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """1-minute bars with ISO timestamps and 2-decimal prices, as CSV and Parquet (deterministic)."""
    rng = np.random.default_rng(20240131)
    n = N_BARS
    ts = np.datetime64("2015-01-02T09:30:00", "s") + np.arange(n, dtype=np.int64) * np.timedelta64(60, "s")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 1e-3, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 1e-3, n))
    frame = pd.DataFrame({
        "timestamp": np.datetime_as_string(ts, unit="s"),
        "open": open_.round(2), "high": np.ceil(high * 100) / 100, "low": np.floor(low * 100) / 100,
        "close": close.round(2), "volume": rng.integers(0, 50_000, n),
    })
    out = tmp_path_factory.mktemp("ingest")
    csv_path, pq_path = out / "bars.csv", out / "bars.parquet"
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), csv_path,
                    pacsv.WriteOptions(quoting_style="none"))
    frame.assign(timestamp=ts.astype("datetime64[ns]")).to_parquet(pq_path, index=False)
    assert load_ohlcv(csv_path).data_hash == load_ohlcv(pq_path).data_hash
    return csv_path, pq_path


#: (our input, baseline loader, baseline input, title, floor, CI floor)
_CASES = [
    pytest.param("csv", "csv", "csv", "ingest CSV {n} bars: load_ohlcv vs bare pandas", 0.5, 0.66,
                 id="csv_vs_bare_pandas"),
    pytest.param("parquet", "ours", "csv", "ingest {n} bars: load_ohlcv Parquet vs CSV", 1.3, 1.0,
                 id="parquet_vs_csv"),
    pytest.param("parquet", "parquet", "parquet", "ingest Parquet {n} bars: load_ohlcv vs bare pandas", 0.25, 0.29,
                 id="parquet_vs_bare_pandas"),
]


@pytest.mark.parametrize(("ours_input", "baseline", "baseline_input", "title", "floor", "ci_floor"), _CASES)
def test_ingest(benchmark: Any, files: tuple[Path, Path], ours_input: str, baseline: str, baseline_input: str,
                title: str, floor: float, ci_floor: float | None) -> None:
    paths = dict(zip(("csv", "parquet"), files, strict=True))
    ours_path, baseline_path = paths[ours_input], paths[baseline_input]
    ours, base = _paired(lambda: load_ohlcv(ours_path), lambda: LOADERS[baseline](baseline_path))
    benchmark.extra_info.update({"n_bars": N_BARS, "peak_mb_ours": _peak_mb("ours", ours_path),
                                 "peak_mb_baseline": _peak_mb(baseline, baseline_path)})
    report(benchmark, title.format(n=N_BARS), ours, base, floor=floor, ci_floor=ci_floor)
    benchmark.pedantic(load_ohlcv, args=(ours_path,), rounds=1, iterations=1)
