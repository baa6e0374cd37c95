"""The one ownership check: "this worker still executes this running run".

The condition (:func:`owned`: ``run_hash = :run_hash AND status = 'running' AND worker = :worker``) is written
here once and used in two statements:

- :func:`fence`, for writes: ``SELECT … FOR SHARE`` inside the write transaction. It finds the row iff the
  worker owns the run and then holds it until commit, so nobody can recover or re-claim the run while the
  fenced writes land (PostgreSQL; SQLite write transactions hold the database write lock anyway). A row lock
  rather than an UPDATE: an updated row would make a concurrent ``INSERT … ON CONFLICT`` of the same run (a
  resubmission) wait for the whole write, and a recovery waiting on the row re-check it after the write,
  racing the worker's next beat.
- :func:`beat`, for liveness: ``UPDATE runs SET heartbeat_at = <database now>`` where owned.

Every writer uses them: :class:`~alphaforge.runs.service.RunService` (``beat``, ``hold_ownership``), the
SQLAlchemy Core bulk path, and the ADBC bulk paths, which get the fence compiled for their driver
(:func:`raw_fence`) and run it with :func:`alphaforge.db.adbc.check_owner`.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from alphaforge.db.adbc import Fenced, RawFence
from alphaforge.db.clock import db_now_ms
from alphaforge.db.models import Run
from alphaforge.enums import RunStatus

# The ADBC drivers' placeholders: qmark for SQLite, $n for PostgreSQL (libpq).
_ADBC_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(paramstyle="numeric_dollar"),
}


def owned(run_hash: str, worker: str) -> ColumnElement[bool]:
    """The ownership condition: the run is running under ``worker``."""
    return and_(Run.run_hash == run_hash, Run.status == RunStatus.RUNNING, Run.worker == worker)


def fence(run_hash: str, worker: str) -> Select[str]:
    """The write fence: the run's row, locked until commit, iff ``worker`` owns the run (else no row)."""
    return select(Run.run_hash).where(owned(run_hash, worker)).with_for_update(read=True)


def beat(run_hash: str, worker: str) -> Update:
    """The heartbeat: stamps the database's now on the run iff ``worker`` owns it (one row updated)."""
    return (
        update(Run).where(owned(run_hash, worker)).values(heartbeat_at=db_now_ms())
        .execution_options(synchronize_session=False)
    )


def _holder(run_hash: str) -> Select[str, str | None]:
    """Who holds the run instead (for the refusal's message)."""
    return select(Run.status, Run.worker).where(Run.run_hash == run_hash)


def beats(connection: Any, run_hash: str, worker: str) -> bool:
    """Beat the run through a SQLAlchemy connection or session: True iff ``worker`` still owns it."""
    return bool(connection.execute(beat(run_hash, worker)).rowcount == 1)


def holds(connection: Any, run_hash: str, worker: str) -> bool:
    """Run the fence through a SQLAlchemy connection or session: True iff ``worker`` still owns the run
    (its row is then locked until the transaction ends)."""
    return connection.execute(fence(run_hash, worker)).first() is not None


def check_owner(connection: Any, run_hash: str, worker: str) -> None:
    """Inside a write transaction: :class:`Fenced` unless ``worker`` still owns the run.

    A run that does not exist passes: the foreign key then rejects the rows.
    """
    if not holds(connection, run_hash, worker):
        row = connection.execute(_holder(run_hash)).first()
        if row is not None:
            raise Fenced(worker, row[0], row[1], run_hash)


@functools.cache
def _template(kind: str, dialect: str) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The fence (or holder) statement compiled once per dialect with ``run_hash``/``worker`` as named
    parameters: ``(sql, parameter names in position order, the constant parameters)``."""
    run_hash: Any = bindparam("fence_run_hash")
    worker: Any = bindparam("fence_worker")
    stmt = fence(run_hash, worker) if kind == "fence" else _holder(run_hash)
    compiled = stmt.compile(dialect=_ADBC_DIALECTS[dialect])
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


def _compiled(kind: str, dialect: str, run_hash: str, worker: str) -> tuple[str, list[Any]]:
    sql, names, constants = _template(kind, dialect)
    values = {**constants, "fence_run_hash": run_hash, "fence_worker": worker}
    return sql, [values[name] for name in names]


def raw_fence(dialect: str, run_hash: str, worker: str) -> RawFence:
    """:func:`check_owner` for a raw ADBC connection: the same statements compiled for its driver (plain,
    JSON-serializable data, so the SQLite helper process can run it without SQLAlchemy). Compiled once per
    dialect; only the parameters change from call to call."""
    sql, params = _compiled("fence", dialect, run_hash, worker)
    holder_sql, holder_params = _compiled("holder", dialect, run_hash, worker)
    return {"owner": worker, "run_hash": run_hash, "sql": sql, "params": params, "holder_sql": holder_sql,
            "holder_params": holder_params}
