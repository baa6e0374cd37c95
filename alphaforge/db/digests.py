"""The Store's side of the input digests: ``input_digests`` rows (what an input's exact content resolved to).

A row is a fact that never changes (same digest, same value), so recording one that is already there keeps it;
lookups are read-only Core queries (they sit on the resubmission fast path, :mod:`alphaforge.runs.resubmit`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from alphaforge.db.models import InputDigest
from alphaforge.db.upsert import insert_ignore


class InputDigestMixin:
    def session(self) -> Any: ...  # provided by Store

    def read_connection(self) -> Any: ...  # provided by Store

    def resolved_input(self, digest: str, kind: str) -> str | None:
        """The value recorded for ``digest`` of ``kind``, or ``None``."""
        table = InputDigest.__table__
        with self.read_connection() as conn:
            return conn.execute(
                select(table.c.value).where(table.c.digest == digest, table.c.kind == kind)
            ).scalar()

    def record_input(self, digest: str, kind: str, value: str, recorded_at: int) -> None:
        """Record what ``digest`` resolved to; a row already there (the same fact) is kept."""
        with self.session() as s:
            insert_ignore(s, InputDigest.__table__, [  # type: ignore[arg-type]
                {"digest": digest, "kind": kind, "value": value, "recorded_at": recorded_at}])
