"""The equity reduction: a few thousand points out of any length, every bucket's extremes kept (so every global
extreme too), and on a 500k-bar run stored in the database the run's equity API ships only the reduced curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _heavy import heavy_size
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from starlette.testclient import TestClient
from test_pipeline import small_config

from alphaforge.data import dataset_from_frame
from alphaforge.data.synthetic import synthetic_ohlcv
from alphaforge.db.store import Store
from alphaforge.runs.provenance import new_run
from alphaforge.runs.service import RunService
from alphaforge.ui.app import create_app
from alphaforge.ui.database import open_read_only
from alphaforge.ui.reduce import DEFAULT_BUCKETS, reduce_indices

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


def _bucket_bounds(n: int, buckets: int) -> list[tuple[int, int]]:
    width = -(-n // buckets)
    return [(s, min(s + width, n)) for s in range(0, n, width)]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 3000), buckets=st.integers(1, 300))
def test_every_bucket_keeps_its_extremes(data: st.DataObject, n: int, buckets: int) -> None:
    a = data.draw(arrays(np.float64, n, elements=finite))
    b = data.draw(arrays(np.float64, n, elements=finite))
    keep = reduce_indices([a, b], buckets)
    assert np.all(np.diff(keep) > 0) and keep[0] == 0 and keep[-1] == n - 1
    if n <= buckets:
        assert keep.tolist() == list(range(n))
        return
    assert len(keep) <= 6 * buckets
    kept = set(keep.tolist())
    for lo, hi in _bucket_bounds(n, buckets):
        inside = [i for i in kept if lo <= i < hi]
        for series in (a, b):
            assert series[lo:hi].min() in series[inside] and series[lo:hi].max() in series[inside]
    for series in (a, b):
        assert series[keep].min() == series.min() and series[keep].max() == series.max()


def test_nan_never_hides_an_extreme() -> None:
    a = np.array([1.0, np.nan, 5.0, -3.0, np.nan, 2.0] * 100)
    keep = reduce_indices([a], 10)
    assert np.nanmax(a[keep]) == 5.0 and np.nanmin(a[keep]) == -3.0


@pytest.mark.parametrize(("args", "message"), [(([], 10), "at least one"), (([np.ones(3)], 0), "buckets"),
                                               (([np.ones(3), np.ones(4)], 5), "same length")])
def test_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reduce_indices(*args)


N_LONG = heavy_size(500_000, minimum=50_000)


@pytest.mark.heavy
def test_a_long_run_ships_a_reduced_curve_with_every_extreme(db_url: str) -> None:
    store = Store(db_url)
    service = RunService(store)
    dataset = dataset_from_frame(synthetic_ohlcv(300, seed=5))
    run_hash = service.create(new_run(small_config(symbol="LONG"), dataset)).run.run_hash
    rng = np.random.default_rng(7)
    equity = (100_000 * np.exp(np.cumsum(rng.normal(0, 0.01, N_LONG)))).astype(np.float32)
    peak = np.maximum.accumulate(equity)
    drawdown = ((peak - equity) / peak).astype(np.float32)
    ts = np.arange(N_LONG, dtype=np.int64) * 60_000_000_000 + 1_600_000_000_000_000_000
    zeros = np.zeros(N_LONG, np.float32)
    store.insert_equity(run_hash, pd.DataFrame({"ts": ts, "equity": equity, "drawdown": drawdown,
                                                "realized_pnl": zeros, "unrealized_pnl": zeros, "cost_drag": zeros}))
    with TestClient(create_app(open_read_only(db_url))) as client:
        r = client.get(f"/api/runs/{run_hash}/equity")
        assert r.status_code == 200
        body = r.json()
        page = client.get(f"/runs/{run_hash}").text
    assert body["n_total"] == N_LONG
    assert body["n_points"] == len(body["equity"]) <= 6 * DEFAULT_BUCKETS
    assert len(r.content) < 300_000  # kilobytes, not the ~30 MB of 500k points
    assert max(body["equity"]) == float(equity.max()) and min(body["equity"]) == float(equity.min())
    assert max(body["drawdown"]) == float(drawdown.max())
    deepest = int(np.argmax(drawdown))
    assert ts[deepest] // 1_000_000 in body["ts_ms"]  # the deepest drawdown at its own timestamp
    assert str(float(equity[N_LONG // 2])) not in page and len(page) < 100_000  # the page itself ships no curve
