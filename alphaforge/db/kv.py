"""Typed key-value metrics (``metrics`` table) and the ``validation`` row.

Values are stored as text with a ``value_type`` (int, float, str, json) and parsed back on read; floats are
written with ``repr`` so they round-trip exactly. A value whose Python type does not match the requested
``value_type`` (or a non-finite float) is a :class:`DataInvalid` error, never a silent string.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import REAL, delete, insert, select

from alphaforge.db.models import Metric, Validation
from alphaforge.db.upsert import upsert
from alphaforge.errors import DataInvalid
from alphaforge.hashing import canonical_json


def infer_value_type(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, dict | list | tuple) or value is None:
        return "json"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    # numpy scalars
    if hasattr(value, "dtype") and hasattr(value, "item"):
        return infer_value_type(value.item())
    raise DataInvalid(f"metric value {value!r} has unsupported type {type(value).__name__}")


def encode_value(key: str, value: Any, value_type: str | None = None) -> tuple[str, str]:
    """(text, value_type) for a metric value; raises DataInvalid when the type does not fit."""
    if hasattr(value, "dtype") and hasattr(value, "item"):
        value = value.item()
    inferred = infer_value_type(value)
    value_type = value_type or inferred
    if value_type == "int" and inferred == "int":
        return str(int(value)), "int"
    if value_type == "float" and inferred in ("float", "int"):
        if not math.isfinite(float(value)):
            raise DataInvalid(f"metric {key!r}: non-finite float {value!r} cannot be stored", key=key)
        return repr(float(value)), "float"
    if value_type == "str" and inferred == "str":
        return value, "str"
    if value_type == "json":
        return canonical_json(value), "json"
    raise DataInvalid(
        f"metric {key!r}: value {value!r} ({type(value).__name__}) is not of value_type {value_type!r}",
        key=key,
    )


def decode_value(text: str, value_type: str) -> Any:
    if value_type == "int":
        return int(text)
    if value_type == "float":
        return float(text)
    if value_type == "json":
        return json.loads(text)
    return text


class MetricsMixin:
    def session(self) -> Any: ...  # provided by Store

    def read_session(self) -> Any: ...  # provided by Store

    @contextmanager
    def _joined(self, session: Any) -> Iterator[Any]:
        """The caller's session (its transaction decides), else a unit of work of our own."""
        if session is not None:
            yield session
            return
        with self.session() as own:
            yield own

    def write_metrics(
        self, run_hash: str, metrics: Mapping[str, Any], *, phase: str | None = None,
        value_types: Mapping[str, str] | None = None, session: Any = None,
    ) -> None:
        """Write (or overwrite) metrics of one phase."""
        rows = []
        for key, value in metrics.items():
            text, vtype = encode_value(key, value, (value_types or {}).get(key))
            rows.append({"run_hash": run_hash, "key": key, "value": text, "value_type": vtype, "phase": phase})
        with self._joined(session) as s:
            _replace_metrics(s, run_hash, phase, rows)

    def read_metrics(self, run_hash: str, *, phase: str | None = None) -> dict[str, Any]:
        """Metrics of one phase (``phase=None``: the metrics written without a phase), parsed."""
        return self.read_all_metrics(run_hash).get(phase, {})

    def read_all_metrics(self, run_hash: str) -> dict[str | None, dict[str, Any]]:
        """All metrics of a run, grouped by phase."""
        out: dict[str | None, dict[str, Any]] = {}
        with self.read_session() as s:
            stmt = select(Metric.phase, Metric.key, Metric.value, Metric.value_type).where(
                Metric.run_hash == run_hash
            )
            for phase, k, v, t in s.execute(stmt.order_by(Metric.phase, Metric.key)):
                out.setdefault(phase, {})[k] = decode_value(v, t)
        return out

    def write_validation(self, run_hash: str, row: Mapping[str, Any], *, session: Any = None) -> None:
        """Write (or replace) the run's validation row; the coherence rule is a CHECK constraint."""
        with self._joined(session) as s:
            upsert(s, Validation.__table__, [{"run_hash": run_hash, **row}], ["run_hash"])  # type: ignore[arg-type]

    def read_validation(self, run_hash: str) -> dict[str, Any] | None:
        with self.read_session() as s:
            row = s.get(Validation, run_hash)
            if row is None:
                return None
            # float4 columns come back as float64 on SQLite and as rounded text on PostgreSQL: give both as
            # the exact float32 value, like the bulk reads do
            return {c.name: _as_float32(getattr(row, c.name)) if isinstance(c.type, REAL)
                    else getattr(row, c.name) for c in Validation.__table__.columns}


def _replace_metrics(session: Any, run_hash: str, phase: str | None, rows: list[dict[str, Any]]) -> None:
    keys = [r["key"] for r in rows]
    if not keys:
        return
    stmt = delete(Metric).where(Metric.run_hash == run_hash, Metric.key.in_(keys))
    stmt = stmt.where(Metric.phase.is_(None) if phase is None else Metric.phase == phase)
    session.execute(stmt)
    session.execute(insert(Metric), rows)


def _as_float32(value: float | None) -> float | None:
    """The float32 nearest ``value`` (as numpy's ``float32(value)`` rounds it), without importing numpy: the
    stored outcome of a resubmission is read without the compute stack."""
    if value is None:
        return None
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:  # beyond float32's range: numpy gives the infinity of its sign
        return math.copysign(math.inf, value)
