"""Small builders of valid OHLCV data for the ingest tests (deterministic; no global random state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

DAY_NS = 86_400 * 10**9
T0_NS = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z


def bars(n: int = 5, *, start_ns: int = T0_NS, step_ns: int = DAY_NS, seed: int = 0,
         adj_close: bool = False) -> pd.DataFrame:
    """A valid raw frame: ``timestamp`` (tz-aware UTC) + Open/High/Low/Close[/Adj Close]/Volume."""
    rng = np.random.default_rng(seed)
    close = (100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))).round(2)
    open_ = np.r_[close[0], close[:-1]]
    high = (np.maximum(open_, close) + rng.uniform(0.0, 1.0, n)).round(2)
    low = (np.minimum(open_, close) - rng.uniform(0.0, 1.0, n)).round(2)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(start_ns + step_ns * np.arange(n, dtype=np.int64), utc=True),
        "Open": open_, "High": high, "Low": low, "Close": close,
    })
    if adj_close:
        frame["Adj Close"] = (close * 0.98).round(2)
    frame["Volume"] = rng.integers(0, 10_000, n).astype(np.int64)
    return frame


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


CSV_HEADER = "ts,open,high,low,close,volume\n"


def csv_text(*rows: str, header: str = CSV_HEADER) -> str:
    """A CSV text: the header and ``rows`` (each without the trailing newline)."""
    return header + "".join(r + "\n" for r in rows)


@st.composite
def valid_frames(draw: st.DrawFn, max_bars: int = 40) -> pd.DataFrame:
    """Valid normalized-layout bars with float32-exact prices (canonical column names, float64 values)."""
    n = draw(st.integers(1, max_bars))
    steps = draw(st.lists(st.integers(1, 10 * DAY_NS), min_size=n, max_size=n))
    start = draw(st.integers(100_000_000, 4_000_000_000)) * 10**9  # 1973..2096: epoch ns read back as ns
    ts = start + np.cumsum(np.asarray(steps, dtype=np.int64)) - steps[0]
    price = st.floats(0.0625, 1048576.0, allow_nan=False, allow_infinity=False, width=32)
    quads = draw(st.lists(st.tuples(price, price, price, price), min_size=n, max_size=n))
    p = np.sort(np.asarray(quads, dtype=np.float32), axis=1).astype(np.float64)
    swap = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    open_ = np.where(swap, p[:, 1], p[:, 2])
    close = np.where(swap, p[:, 2], p[:, 1])
    volume = np.asarray(draw(st.lists(st.integers(0, 2**53), min_size=n, max_size=n)), dtype=np.int64)
    return pd.DataFrame({"ts": ts, "open": open_, "high": p[:, 3], "low": p[:, 0], "close": close,
                         "volume": volume})
