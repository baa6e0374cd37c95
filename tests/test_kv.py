"""Typed key-value metrics and the validation row on real databases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from test_models import H, run_row

from alphaforge.db.kv import _as_float32
from alphaforge.db.models import Metric, Run
from alphaforge.db.store import Store
from alphaforge.errors import DataInvalid


@pytest.fixture
def run_hash(store: Store) -> str:
    with store.session() as s:
        s.execute(insert(Run).values(run_row()))
    return H


def test_typed_metrics_round_trip_exactly(store: Store, run_hash: str) -> None:
    values: dict[str, Any] = {"n_trades": 12, "sharpe": 0.1 + 0.2, "tiny": 5e-324, "label": "sma 10/50",
                              "params": {"fast": 10, "slow": [50, 100]}, "flag": True, "np_int": np.int64(7),
                              "np_float": np.float32(0.25)}
    store.write_metrics(run_hash, values, phase="backtest")
    got = store.read_metrics(run_hash, phase="backtest")
    assert got == {**values, "np_int": 7, "np_float": 0.25}
    assert type(got["n_trades"]) is int and type(got["sharpe"]) is float and got["sharpe"] == 0.30000000000000004
    with store.session() as s:
        types = dict(s.execute(select(Metric.key, Metric.value_type)).all())
    assert types == {"n_trades": "int", "sharpe": "float", "tiny": "float", "label": "str", "params": "json",
                     "flag": "json", "np_int": "int", "np_float": "float"}


def test_phases_are_kept_apart_and_rewrites_replace(store: Store, run_hash: str) -> None:
    store.write_metrics(run_hash, {"sharpe": 1.0}, phase="backtest")
    store.write_metrics(run_hash, {"sharpe": 2.0}, phase="validation")
    store.write_metrics(run_hash, {"sharpe": 3.0})
    store.write_metrics(run_hash, {"sharpe": 4.0})  # NULL phase: replaced, not duplicated
    assert store.read_all_metrics(run_hash) == {None: {"sharpe": 4.0}, "backtest": {"sharpe": 1.0},
                                                "validation": {"sharpe": 2.0}}


@pytest.mark.parametrize(("value", "value_type", "match"), [
    ("1.5", "float", "is not of value_type 'float'"),
    (1.5, "int", "is not of value_type 'int'"),
    (3, "str", "is not of value_type 'str'"),
    (math.inf, None, "non-finite"),
    (math.nan, "float", "non-finite"),
    (object(), None, "unsupported type"),
])
def test_a_wrong_type_is_an_error_not_a_silent_string(
    store: Store, run_hash: str, value: Any, value_type: str | None, match: str
) -> None:
    with pytest.raises(DataInvalid, match=match):
        store.write_metrics(run_hash, {"m": value}, value_types={"m": value_type} if value_type else None)
    assert store.read_all_metrics(run_hash) == {}


def test_validation_float4_values_read_back_identically_on_both_backends(store: Store, run_hash: str) -> None:
    low, high = float(np.float32(3) / np.float32(11)), float(np.float32(0.5))
    store.write_validation(run_hash, {"payload_json": "{}", "bootstrap_method": "hadj_bb",
                                      "bootstrap_block_length": 3, "bootstrap_jitter": 1, "bootstrap_fallback": 0,
                                      "bootstrap_sharpe_low": low, "bootstrap_sharpe_high": high,
                                      "permutation_pvalue": None})
    row = store.read_validation(run_hash)
    assert row is not None
    assert row["bootstrap_sharpe_low"] == low == 0.27272728085517883 and row["bootstrap_sharpe_high"] == 0.5
    assert row["permutation_pvalue"] is None and row["bootstrap_cagr_low"] is None


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, width=64))
def test_float32_rounding_without_numpy_is_numpy_s(value: float) -> None:
    """The validation row's float32 columns are rounded as ``numpy.float32`` rounds them, overflow included."""
    with np.errstate(over="ignore"):
        expected = float(np.float32(value))
    assert _as_float32(value) == expected and math.copysign(1, _as_float32(value) or 1.0) == math.copysign(1, expected or 1.0)


@pytest.mark.parametrize("value", [3.4028235677973366e38, 3.4028235677973366e38 * (1 + 2**-25), 1e39, -1e39,
                                   1e-46, -1e-46, 0.1, math.inf, -math.inf])
def test_float32_rounding_edges(value: float) -> None:
    with np.errstate(over="ignore"):
        assert _as_float32(value) == float(np.float32(value))
    nan = _as_float32(math.nan)
    assert nan is not None and math.isnan(nan)
