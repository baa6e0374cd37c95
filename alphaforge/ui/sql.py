"""SQL expressions the dashboard's queries share (SQLAlchemy Core; every value is a bound parameter).

* :class:`MetricJoins` — a run's numeric metrics of the backtest phase as columns of outer-joined aliases
  of ``metrics`` (one per metric, at most one row each by the unique index; ``NULL`` when missing or not a
  number); ``pvalue`` is the validation row's permutation p-value. Joins, not correlated subqueries, so that
  PostgreSQL can hash-join a metric over every run instead of probing it run by run.
* :func:`config_text` — a string field of ``runs.config_json`` (``json_extract`` on SQLite, ``->>`` on
  PostgreSQL's ``json``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, func, type_coerce
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from alphaforge.db.models import Metric, Run, Validation
from alphaforge.enums import MetricValueType

#: the metrics phase the listing reads (what the pipeline stores the performance metrics under)
METRICS_PHASE = "backtest"
PVALUE = "pvalue"
_NUMERIC_TYPES = (MetricValueType.INT.value, MetricValueType.FLOAT.value)


class MetricJoins:
    """The metrics a query sorts or filters by, each joined once; :meth:`value` names one, :meth:`apply` adds
    the joins to a statement over ``runs``."""

    def __init__(self) -> None:
        self._aliases: dict[str, Any] = {}

    def value(self, name: str) -> ColumnElement[Any]:
        alias = self._aliases.setdefault(name, aliased(Validation if name == PVALUE else Metric))
        if name == PVALUE:
            return alias.permutation_pvalue
        # the CASE keeps PostgreSQL from casting a text metric ('abc'::float fails)
        return case((alias.value_type.in_(_NUMERIC_TYPES), cast(alias.value, Float)), else_=None)

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        for name, alias in self._aliases.items():
            on = alias.run_hash == Run.run_hash
            if name != PVALUE:
                on = and_(on, alias.key == name, alias.phase == METRICS_PHASE)
            stmt = stmt.outerjoin(alias, on)
        return stmt


def config_text(dialect: str, *path: str) -> ColumnElement[Any]:
    """``config_json`` at ``path`` (e.g. ``("strategy", "name")``) as text."""
    if dialect == "postgresql":
        doc = cast(Run.config_json, JSON)  # json, not jsonb: ->> on text parsed once, no binary conversion
        return doc[path[0]].astext if len(path) == 1 else doc[path].astext
    return type_coerce(func.json_extract(Run.config_json, "$." + ".".join(f'"{p}"' for p in path)), Run.status.type)
