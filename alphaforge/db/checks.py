"""The model's CHECK constraints, judged by the database itself on any row (stored or not).

``alphaforge verify`` must not restate the rules the schema already enforces (enums, the bootstrap
coherence rule, ordered CIs …): it asks the database. :func:`violated_checks` evaluates every
:class:`~sqlalchemy.CheckConstraint` of a mapped table — the very SQL the migrations created — against a
row given as a mapping of column values, with a single ``SELECT`` from a one-row derived table named like
the table (each value cast to its column's type, so both backends compare like the stored column would).

A CHECK holds unless its expression is *false* (NULL passes, as in the database), so a row that the
database would store passes here and a row it would refuse is reported with the names of the CHECKs it
breaks. The SQL text comes from the model (constants), never from the row: the row's values are bound
parameters.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Table, case, cast, literal, literal_column, not_, select
from sqlalchemy.orm import DeclarativeBase, Session

__all__ = ["check_constraints", "violated_checks"]


def check_constraints(table: Table) -> list[CheckConstraint]:
    """The table's CHECK constraints, by name (their names carry the naming convention's ``ck_<table>_``)."""
    return sorted((c for c in table.constraints if isinstance(c, CheckConstraint)), key=lambda c: str(c.name))


def violated_checks(session: Session, model: type[DeclarativeBase],
                    row: Mapping[str, Any]) -> list[CheckConstraint]:
    """The CHECK constraints of ``model``'s table that ``row`` (column name → value; absent = NULL) breaks."""
    table = typing.cast(Table, model.__table__)
    checks = check_constraints(table)
    if not checks:
        return []
    values = select(*[cast(literal(row.get(c.name), c.type), c.type).label(c.name) for c in table.columns])
    source = values.subquery(table.name)
    # the parentheses keep each CHECK one operand of NOT (SQLAlchemy renders a Boolean's NOT as "= 0" on SQLite)
    verdicts = [case((not_(literal_column(f"({ck.sqltext})", Boolean)), 1), else_=0) for ck in checks]
    broken = session.execute(select(*verdicts).select_from(source)).one()
    return [ck for ck, bad in zip(checks, broken, strict=True) if bad]
