"""The unit of work: a run's lifecycle in the database.

State machine (anything else raises :class:`IllegalTransition`)::

    pending ──► running ──► completed
                   │
                   └──► failed ──► pending (retry)

Every transition is one conditional ``UPDATE … WHERE status = <from>``, so two workers racing for the same
run cannot both win: exactly one claims it (pending → running), the others see it running and wait for the
outcome (or get :class:`RunAlreadyRunning` when they choose not to wait). ``updated_at`` strictly increases
on every transition.

Errors: :meth:`RunService.fail` writes a ``run_errors`` row (stable ``error_code``, message truncated to
:data:`MESSAGE_MAX_CHARS`, ``stack_hash`` = sha256 of the formatted traceback), removes the attempt's
trades/equity/validation/metrics rows, and marks the run failed — one transaction, so no half result is ever
visible. Phase and error rows stay for post-mortem.

Liveness: the worker that claims a run stamps ``runs.worker`` and ``runs.heartbeat_at`` and refreshes the
heartbeat while it executes (:mod:`alphaforge.runs.liveness` sets how often and the staleness timeout). A running
run whose heartbeat is older than the staleness timeout belongs to a worker that died: :meth:`RunService.recover`
marks it failed with a ``RUN_ABANDONED`` error and removes its partial rows; a resubmission then runs it again
(``alphaforge runs recover`` does the same by hand). Ownership ("this worker still executes this running run")
is the one condition of :mod:`alphaforge.db.ownership`: its fence guards every write, the bulk ones included.

Clocks: ``heartbeat_at`` is stamped, and staleness judged, by the database's clock
(:func:`alphaforge.db.clock.db_now_ms`), so workers whose wall clocks disagree still agree on who is alive.
``created_at``, ``updated_at``, phase times and ``run_errors.ts`` come from the service's ``clock`` (the
worker's wall clock unless one is injected, e.g. by tests); they record events and never decide liveness
(except for a running run that has no heartbeat at all, which falls back to its ``updated_at``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from alphaforge.db import ownership
from alphaforge.db.clock import db_now_ms
from alphaforge.db.migrate import SCHEMA_VERSION
from alphaforge.db.models import Equity, Metric, PhaseMetric, Run, RunError, Trade, Validation
from alphaforge.db.store import Store
from alphaforge.db.upsert import insert_ignore
from alphaforge.enums import RunStatus
from alphaforge.errors import (
    IllegalTransition,
    IntegrityMismatch,
    RunAbandoned,
    RunAlreadyRunning,
    RunAmbiguous,
    RunNotFound,
    error_code_of,
)
from alphaforge.hashing import canonical_json, sha256_hex
from alphaforge.runs.liveness import SIGN_OF_LIFE, silence_ms, silent_running, stale_limit_ms, worker_id
from alphaforge.runs.provenance import NewRun, new_run

if TYPE_CHECKING:  # the compute stack loads when a run is submitted, not to list or show runs
    from alphaforge.config import RunConfig
    from alphaforge.data import Dataset

MESSAGE_MAX_CHARS = 2000
TRANSITIONS: dict[str, tuple[str, ...]] = {
    RunStatus.PENDING: (RunStatus.RUNNING,),
    RunStatus.RUNNING: (RunStatus.COMPLETED, RunStatus.FAILED),
    RunStatus.FAILED: (RunStatus.PENDING,),
    RunStatus.COMPLETED: (),
}
RESULT_TABLES = (Trade, Equity, Validation, Metric)


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class RunRecord:
    """A run as plain data: never bound to a session."""

    run_hash: str
    status: str
    created_at: int
    updated_at: int
    data_hash: str
    seed_root: int
    bootstrap_seed: int
    db_version: int
    config: dict[str, Any]
    manifest: dict[str, Any]
    walk_forward_spec: dict[str, Any] | None
    heartbeat_at: int | None = None
    worker: str | None = None

    @classmethod
    def of(cls, run: Run) -> RunRecord:
        return cls(
            run_hash=run.run_hash, status=run.status, created_at=run.created_at, updated_at=run.updated_at,
            data_hash=run.data_hash, seed_root=run.seed_root, bootstrap_seed=run.bootstrap_seed,
            db_version=run.db_version, config=json.loads(run.config_json),
            manifest=json.loads(run.manifest_json),
            walk_forward_spec=json.loads(run.walk_forward_spec_json) if run.walk_forward_spec_json else None,
            heartbeat_at=run.heartbeat_at, worker=run.worker,
        )


def pending_row(new: NewRun, now: int) -> dict[str, Any]:
    """The ``runs`` row of a new run, ``pending`` (what :meth:`RunService.create` inserts)."""
    return {
        "run_hash": new.run_hash, "created_at": now, "updated_at": now, "status": RunStatus.PENDING,
        "config_json": canonical_json(new.config), "manifest_json": canonical_json(new.manifest),
        "data_hash": new.data_hash, "seed_root": new.seed_root, "db_version": SCHEMA_VERSION,
        "bootstrap_seed": new.bootstrap_seed,
        "walk_forward_spec_json": None if new.walk_forward_spec is None
        else canonical_json(new.walk_forward_spec),
    }


@dataclass(frozen=True)
class Submission:
    run: RunRecord
    created: bool  # this call inserted the row

    @property
    def reused(self) -> bool:
        """The run already completed: its stored results are the answer, nothing is recomputed."""
        return not self.created and self.run.status == RunStatus.COMPLETED


@dataclass
class PhaseHandle:
    """Yielded by :meth:`RunService.phase`: set ``rows_processed`` and add to ``extra`` during the phase."""

    run_hash: str
    name: str
    rows_processed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RunService:
    """Owns the lifecycle of runs in one Store."""

    def __init__(self, store: Store, *, clock: Callable[[], int] = epoch_ms) -> None:
        self.store = store
        self.clock = clock

    # -- lookup ------------------------------------------------------------------------------------------

    def get(self, run_hash: str) -> RunRecord:
        with self.store.read_session() as s:
            return RunRecord.of(Run.find(s, run_hash))

    def resolve(self, prefix: str) -> str:
        """The full run_hash for a unique prefix (as git does)."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise RunNotFound("empty run id: give a run_hash or a unique prefix of one")
        with self.store.read_session() as s:
            matches = Run.find_by_prefix(s, prefix)
        if not matches:
            raise RunNotFound(f"no run matches {prefix!r}: list runs with `alphaforge runs list`", prefix=prefix)
        if len(matches) > 1:
            raise RunAmbiguous(f"run prefix {prefix!r} is ambiguous: give more characters", prefix=prefix)
        return matches[0]

    # -- submit and transitions --------------------------------------------------------------------------

    def submit(self, config: RunConfig, dataset: Dataset) -> Submission:
        """Create the ``pending`` run for ``config`` on ``dataset``, or find it (``reused`` if completed)."""
        return self.create(new_run(config, dataset))

    def create(self, new: NewRun) -> Submission:
        """Create the run as ``pending``, or find the existing one (same run_hash ⇒ same run)."""
        with self.store.session() as s:
            created = insert_ignore(s, Run.__table__, [pending_row(new, self.clock())]) == 1  # type: ignore[arg-type]
            run = RunRecord.of(Run.find(s, new.run_hash))
        return Submission(run=run, created=created)

    def _move(self, session: Session, run_hash: str, frm: str, to: str, *conditions: Any,
              **values: Any) -> bool:
        """The conditional UPDATE behind every transition: True iff the run was in ``frm`` and now is ``to``."""
        now = self.clock()
        later = case((Run.updated_at >= now, Run.updated_at + 1), else_=now)  # strictly increasing
        result = session.execute(
            update(Run).where(Run.run_hash == run_hash, Run.status == frm, *conditions)
            .values(status=to, updated_at=later, **values).execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def transition(self, run_hash: str, to: str, *, session: Session | None = None) -> RunRecord:
        """Move the run to ``to`` from its current state, atomically; IllegalTransition otherwise."""
        if session is None:
            with self.store.session() as s:
                return self.transition(run_hash, to, session=s)
        current = Run.find(session, run_hash).status
        if to not in TRANSITIONS[current]:
            raise IllegalTransition(
                f"run {run_hash[:12]}: cannot go from {current} to {to} "
                f"(allowed from {current}: {', '.join(TRANSITIONS[current]) or 'none'})",
                run_hash=run_hash, current=current, target=to,
            )
        if not self._move(session, run_hash, current, to):
            raise IllegalTransition(f"run {run_hash[:12]} changed state concurrently (was {current})")
        session.expire_all()
        return RunRecord.of(Run.find(session, run_hash))

    def claim(self, run_hash: str) -> bool:
        """Try to take the run for execution: pending → running (or failed → pending → running).

        Returns True for exactly one of any number of concurrent callers.
        """
        with self.store.session() as s:
            status = Run.find(s, run_hash).status
            if status == RunStatus.FAILED and self._move(s, run_hash, RunStatus.FAILED, RunStatus.PENDING):
                status = RunStatus.PENDING
            return status == RunStatus.PENDING and self._move(
                s, run_hash, RunStatus.PENDING, RunStatus.RUNNING, worker=worker_id(), heartbeat_at=db_now_ms()
            )

    def beat(self, run_hash: str) -> bool:
        """Refresh this worker's heartbeat on a run it is executing; False if the run is no longer ours."""
        with self.store.session() as s:
            return ownership.beats(s, run_hash, worker_id())

    def hold_ownership(self, session: Session, run_hash: str) -> None:
        """Fence a write transaction: lock the run's row inside ``session`` until commit (PostgreSQL; SQLite
        transactions are serialized anyway) or raise RunAbandoned if it is not ours."""
        if not ownership.holds(session, run_hash, worker_id()):
            raise RunAbandoned(f"worker {worker_id()} no longer owns run {run_hash[:12]}: not writing to it")

    def ensure_owner(self, run_hash: str) -> None:
        """Fence: raise RunAbandoned unless this worker still executes the run (beats it as a side effect).

        A worker that was frozen long enough to be recovered must not write into the run another worker
        has claimed since; the pipeline calls this before every phase.
        """
        if not self.beat(run_hash):
            raise RunAbandoned(
                f"worker {worker_id()} no longer owns run {run_hash[:12]}: it was recovered as abandoned "
                "(stale heartbeat) and may be executing elsewhere; resubmit to get its result"
            )

    def is_stale(self, run: RunRecord, stale_after: float | None = None) -> bool:
        """Whether the run's worker stopped heart-beating: asked of the database (its clock, the current row)."""
        if run.status != RunStatus.RUNNING:
            return False
        with self.store.read_session() as s:
            found = s.scalar(select(Run.run_hash).where(
                Run.run_hash == run.run_hash, silent_running(stale_limit_ms(stale_after))
            ))
        return found is not None

    def recover(self, run_hash: str | None = None, *, stale_after: float | None = None) -> list[str]:
        """Fail every stale running run (or just ``run_hash``): RUN_ABANDONED, partial rows removed.

        The staleness condition (by the database's clock) is part of the UPDATE, so a worker that beats in the
        meantime keeps its run.
        """
        limit_ms = stale_limit_ms(stale_after)
        with self.store.read_session() as s:
            stmt = select(Run.run_hash, Run.worker, SIGN_OF_LIFE, silence_ms()).where(silent_running(limit_ms))
            if run_hash is not None:
                stmt = stmt.where(Run.run_hash == run_hash)
            candidates = s.execute(stmt.order_by(Run.run_hash)).all()
        recovered = []
        for stale_hash, worker, last, silence in candidates:
            message = (f"worker {worker or 'unknown'} stopped heart-beating: last sign of life {silence / 1000:.1f} s "
                       f"ago by the database clock (at {last} ms), stale after {limit_ms / 1000:g} s; "
                       "partial results removed")
            with self.store.session() as s:
                if not self._move(s, stale_hash, RunStatus.RUNNING, RunStatus.FAILED, silent_running(limit_ms)):
                    continue
                self._remove_results(s, stale_hash)
                s.execute(insert(RunError).values(
                    run_hash=stale_hash, ts=self.clock(), phase=None, error_code=RunAbandoned.error_code,
                    message=message, stack_hash=sha256_hex(message),
                ))
            recovered.append(stale_hash)
        return recovered

    @staticmethod
    def _remove_results(session: Session, run_hash: str) -> None:
        for model in RESULT_TABLES:
            session.execute(delete(model).where(model.run_hash == run_hash))

    def wait_for(self, run_hash: str, *, timeout_s: float = 3600.0, poll_s: float = 0.2) -> RunRecord:
        """Wait until another worker finishes the run (completed or failed; a stale run is recovered)."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get(run_hash)
            if run.status in (RunStatus.COMPLETED, RunStatus.FAILED):
                return run
            if self.is_stale(run) and self.recover(run_hash):
                continue  # its worker died: now failed, the caller may retry it
            if time.monotonic() > deadline:
                raise RunAlreadyRunning(
                    f"run {run_hash[:12]} is still {run.status} in another worker after {timeout_s:.0f} s"
                )
            time.sleep(poll_s)

    def last_error(self, run_hash: str) -> tuple[str, str] | None:
        """(error_code, message) of the run's newest ``run_errors`` row, if any."""
        with self.store.read_session() as s:
            row = s.execute(
                select(RunError.error_code, RunError.message).where(RunError.run_hash == run_hash)
                .order_by(RunError.id.desc()).limit(1)
            ).first()
        return None if row is None else (row[0], row[1])

    # -- phases, errors, finalize ------------------------------------------------------------------------

    @contextmanager
    def phase(self, run_hash: str, name: str, rows_processed: int | None = None) -> Iterator[PhaseHandle]:
        """Record a phase: a ``phase_metrics`` row written at start, completed at the end (even on error)."""
        handle = PhaseHandle(run_hash, name, rows_processed)
        started = self.clock()
        with self.store.session() as s:
            phase_id = s.scalar(
                insert(PhaseMetric).values(run_hash=run_hash, phase=name, started_at=started, extra_json="{}")
                .returning(PhaseMetric.id)
            )
        try:
            yield handle
        except BaseException as exc:
            handle.extra.setdefault("error_code", error_code_of(exc))
            raise
        finally:
            self._end_phase(phase_id, started, handle)

    def record_phase(self, run_hash: str, name: str, started_at: int, ended_at: int,
                     rows_processed: int | None = None, extra: dict[str, Any] | None = None) -> None:
        """Record a phase that ran before the run row existed (e.g. loading the data to hash it)."""
        with self.store.session() as s:
            s.execute(insert(PhaseMetric).values(
                run_hash=run_hash, phase=name, started_at=started_at, ended_at=ended_at,
                duration_ms=ended_at - started_at, rows_processed=rows_processed,
                extra_json=canonical_json(extra or {}),
            ))

    def _end_phase(self, phase_id: int | None, started: int, handle: PhaseHandle) -> None:
        ended = max(self.clock(), started)
        with self.store.session() as s:
            s.execute(update(PhaseMetric).where(PhaseMetric.id == phase_id).values(
                ended_at=ended, duration_ms=ended - started, rows_processed=handle.rows_processed,
                extra_json=canonical_json(handle.extra),
            ))

    def fail(self, run_hash: str, exc: BaseException, *, phase: str | None = None) -> RunRecord:
        """Record the error, remove the attempt's partial results, mark the run failed (one transaction).

        A no-op for a run this worker no longer executes (recovered and perhaps re-claimed elsewhere).
        """
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        message = (str(exc) or type(exc).__name__)[:MESSAGE_MAX_CHARS]
        with self.store.session() as s:
            run = Run.find(s, run_hash)
            if run.status != RunStatus.RUNNING or run.worker not in (None, worker_id()):
                return RunRecord.of(run)  # not ours any more: the rows belong to the current owner
            self._remove_results(s, run_hash)
            s.execute(insert(RunError).values(
                run_hash=run_hash, ts=self.clock(), phase=phase, error_code=error_code_of(exc),
                message=message, stack_hash=sha256_hex(stack),
            ))
            return self.transition(run_hash, RunStatus.FAILED, session=s)

    def complete(self, run_hash: str, *, data_hash: str, manifest: dict[str, Any] | None = None,
                 expected_equity_rows: int | None = None) -> RunRecord:
        """Finalize: check the dataset hash the stages used and the row counts, then mark completed."""
        with self.store.session() as s:
            run = Run.find(s, run_hash)
            if run.status == RunStatus.RUNNING and run.worker not in (None, worker_id()):
                raise RunAbandoned(f"worker {worker_id()} no longer owns run {run_hash[:12]}: not completing it")
            if run.data_hash != data_hash:
                raise IntegrityMismatch(
                    f"run {run_hash[:12]}: stages used data_hash {data_hash[:12]}…, the run records "
                    f"{run.data_hash[:12]}…", run_hash=run_hash,
                )
            if expected_equity_rows is not None:
                n = s.scalar(select(func.count()).select_from(Equity).where(Equity.run_hash == run_hash))
                if n != expected_equity_rows:
                    raise IntegrityMismatch(
                        f"run {run_hash[:12]}: {n} equity rows stored, {expected_equity_rows} bars expected"
                    )
            if manifest is not None:
                run.manifest_json = canonical_json(manifest)
                s.flush()
            owner = (Run.worker == run.worker) if run.worker is not None else Run.worker.is_(None)
            if not self._move(s, run_hash, RunStatus.RUNNING, RunStatus.COMPLETED, owner):
                raise IllegalTransition(
                    f"run {run_hash[:12]}: cannot complete from {run.status} (or it changed owner meanwhile)"
                )
            s.expire_all()
            return RunRecord.of(Run.find(s, run_hash))
