"""Deleting runs (``alphaforge runs delete``, and the failed runs ``runs gc --failed-older-than`` removes).

:func:`delete_runs` removes the named runs and every row that belongs to them — every table with a foreign
key to ``runs.run_hash`` (:func:`run_tables`: trades, equity, validation, metrics, run_errors,
phase_metrics), children first — in one transaction, so several runs go all together or not at all. The
runs are locked first (``SELECT … FOR UPDATE`` on PostgreSQL; a SQLite write transaction is exclusive
anyway), so the status checked is the status deleted: a running run belongs to a live worker and is refused
(RUN_RUNNING) unless its heartbeat is stale. A worker that was declared stale but is still alive finds its
run gone at its next fenced write and stops (see :mod:`alphaforge.runs.service`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.orm import Session

from alphaforge.db.models import Base, Run
from alphaforge.db.store import Store
from alphaforge.enums import RunStatus
from alphaforge.errors import ConfigInvalid, RunAlreadyRunning, RunNotFound
from alphaforge.runs.service import RunRecord, RunService

DAY_MS = 86_400_000
_CHUNK = 500  # run_hashes per IN (...) list


@contextmanager
def read_or_write(store: Store, *, read_only: bool) -> Iterator[Session]:
    """A write transaction (committed on success), or a read-only one that takes no write lock."""
    if not read_only:
        with store.session() as s:
            yield s
        return
    with store.read_session() as s:
        yield s


def run_tables() -> tuple[Table, ...]:
    """Every table whose rows belong to a run (a foreign key to ``runs.run_hash`` with ``ON DELETE CASCADE``),
    children first, ``runs`` last: derived from the models, so a new child table is deleted with its run without
    a change here. A table that only *refers* to runs (``sweep_points``: ``ON DELETE SET NULL``) keeps its rows;
    the database clears the reference."""
    runs = Run.__table__
    children = [
        t for t in Base.metadata.sorted_tables
        if any(fk.column.table is runs and fk.ondelete == "CASCADE" for fk in t.foreign_keys)
    ]
    return (*reversed(children), runs)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _remove_runs(session: Session, hashes: list[str], *, dry_run: bool) -> dict[str, int]:
    """Delete (or, dry, count) the rows of ``hashes`` in every run table; rows per table."""
    counts: dict[str, int] = {}
    for table in run_tables():
        n = 0
        for chunk in _chunks(hashes):
            where = table.c.run_hash.in_(chunk)
            if dry_run:
                n += int(session.scalar(select(func.count()).select_from(table).where(where)) or 0)
            else:
                n += int(session.execute(delete(table).where(where)).rowcount)  # type: ignore[attr-defined]
        counts[table.name] = n
    return counts


def _locked_runs(session: Session, condition: ColumnElement[bool], *, lock: bool) -> list[RunRecord]:
    stmt = select(Run).where(condition).order_by(Run.run_hash)
    return [RunRecord.of(r) for r in session.scalars(stmt.with_for_update() if lock else stmt)]


@dataclass(frozen=True)
class DeleteReport:
    """Runs removed (run_hash, status at removal) and the rows removed per table (``runs`` included)."""

    runs: tuple[tuple[str, str], ...]
    rows: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"runs": [{"run_hash": h, "status": s} for h, s in self.runs], "rows": self.rows}


def delete_runs(store: Store, run_ids: Iterable[str], *, stale_after: float | None = None) -> DeleteReport:
    """Delete the runs (full run_hash or unique prefix each) with all their rows, in one transaction.

    RUN_NOT_FOUND / RUN_AMBIGUOUS for an id that does not name one run; RUN_RUNNING for a running run whose
    worker is alive (heartbeat younger than ``stale_after``, default ``$ALPHAFORGE_STALE_AFTER_S``). Any error
    leaves every run in place.
    """
    service = RunService(store)
    hashes = list(dict.fromkeys(service.resolve(r) for r in run_ids))
    with store.session() as s:
        runs = _locked_runs(s, Run.run_hash.in_(hashes), lock=True)
        gone = sorted(set(hashes) - {r.run_hash for r in runs})
        if gone:
            raise RunNotFound(f"run {gone[0]} was deleted meanwhile: nothing deleted", run_hash=gone[0])
        for run in runs:
            if run.status == RunStatus.RUNNING and not service.is_stale(run, stale_after):
                raise RunAlreadyRunning(
                    f"run {run.run_hash[:12]} is running in worker {run.worker or 'unknown'}: nothing deleted; "
                    f"wait for it to finish, or if its worker died run `alphaforge runs recover "
                    f"{run.run_hash[:12]}` first", run_hash=run.run_hash,
                )
        rows = _remove_runs(s, hashes, dry_run=False)
    status = {r.run_hash: r.status for r in runs}
    return DeleteReport(tuple((h, status[h]) for h in hashes), rows)


def failed_runs(store: Store, older_than_days: float, *, dry_run: bool, now_ms: int) -> DeleteReport:
    """Delete (or, dry, count) the failed runs last updated more than ``older_than_days`` ago."""
    if not older_than_days >= 0:
        raise ConfigInvalid(f"--failed-older-than {older_than_days}: expected a number of days >= 0",
                            field="failed_older_than")
    cutoff = now_ms - int(older_than_days * DAY_MS)
    with read_or_write(store, read_only=dry_run) as s:
        runs = _locked_runs(s, (Run.status == RunStatus.FAILED) & (Run.updated_at < cutoff), lock=not dry_run)
        rows = _remove_runs(s, [r.run_hash for r in runs], dry_run=dry_run)
    return DeleteReport(tuple((r.run_hash, r.status) for r in runs), rows)
