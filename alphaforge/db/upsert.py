"""Dialect-aware INSERT ... ON CONFLICT helpers (SQLite and PostgreSQL share the syntax)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def insert_ignore(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows, silently keeping any existing row with the same primary key; returns rows inserted.

    Counted with ``RETURNING`` (exact on both backends: a skipped row returns nothing), not ``rowcount``,
    which psycopg does not report for these statements.
    """
    if not rows:
        return 0
    pk = list(table.primary_key.columns)[0]
    stmt = _insert(session, table).on_conflict_do_nothing().returning(pk)
    return sum(len(session.execute(stmt.values(**row)).all()) for row in rows)


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing the non-key columns of any existing row with the same ``keys``."""
    if not rows:
        return
    stmt = _insert(session, table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows))
