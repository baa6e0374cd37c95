"""SQL expressions the dashboard's queries share (SQLAlchemy Core; every value is a bound parameter).

* :func:`metric_value` — a run's numeric metric of the backtest phase as a correlated scalar subquery
  (``NULL`` when missing or not a number); ``pvalue`` is the validation row's permutation p-value.
* :func:`config_text` — a string field of ``runs.config_json`` (``json_extract`` on SQLite, ``->>`` on
  PostgreSQL's ``jsonb``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from alphaforge.db.models import Metric, Run, Validation
from alphaforge.enums import MetricValueType

#: the metrics phase the listing reads (what the pipeline stores the performance metrics under)
METRICS_PHASE = "backtest"
PVALUE = "pvalue"
_NUMERIC_TYPES = (MetricValueType.INT.value, MetricValueType.FLOAT.value)


def metric_value(name: str) -> ColumnElement[Any]:
    """The run's metric ``name`` as a float (a correlated scalar subquery on ``runs``)."""
    if name == PVALUE:
        return (select(Validation.permutation_pvalue).where(Validation.run_hash == Run.run_hash)
                .correlate(Run).scalar_subquery())
    # the CASE keeps PostgreSQL from casting a text metric ('abc'::float fails) whatever the plan's order
    numeric = case((Metric.value_type.in_(_NUMERIC_TYPES), cast(Metric.value, Float)), else_=None)
    return (
        select(numeric)
        .where(and_(Metric.run_hash == Run.run_hash, Metric.key == name, Metric.phase == METRICS_PHASE))
        .correlate(Run).scalar_subquery()
    )


def config_text(dialect: str, *path: str) -> ColumnElement[Any]:
    """``config_json`` at ``path`` (e.g. ``("strategy", "name")``) as text."""
    if dialect == "postgresql":
        doc = cast(Run.config_json, JSONB)
        return doc[path[0]].astext if len(path) == 1 else doc[path].astext
    return type_coerce(func.json_extract(Run.config_json, "$." + ".".join(f'"{p}"' for p in path)), Run.status.type)
