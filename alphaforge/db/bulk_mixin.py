"""The Store's methods for the high-volume rows (trades, equity).

A light facade: the bulk machinery (numpy, pyarrow, the ADBC drivers; :mod:`alphaforge.db.bulk`) loads at the
first call, so opening a Store to list runs or to answer a resubmission from the database never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    import pandas as pd

    from alphaforge.db.bulk import BulkBackend
    from alphaforge.db.bulk_frames import FrameLike


class BulkMixin:
    """Store methods for trades and equity (the Store provides ``engine``)."""

    engine: Engine

    def bulk_backend(self) -> BulkBackend:
        """The path of a large call (:func:`alphaforge.db.bulk.backend_for`)."""
        from alphaforge.db.bulk import backend_for

        return backend_for(self.engine)

    def _backend(self, rows: int | None) -> BulkBackend:
        """The path of a call of ``rows`` rows: a small one on a SQLite file stays in this process."""
        from alphaforge.db.bulk import SMALL_FRAME_ROWS, CoreBulk, SqliteAdbcBulk

        backend = self.bulk_backend()
        if isinstance(backend, SqliteAdbcBulk) and rows is not None and rows < SMALL_FRAME_ROWS:
            return CoreBulk(self.engine)
        return backend

    def insert_trades(self, run_hash: str, data: FrameLike, *, owner: str | None = None) -> int:
        """Insert a run's trades (``seq`` = 0..n-1 in ts order); the number of rows inserted.

        ``owner`` (a worker id) fences the write: inside its transaction, holding the run row, the run must
        be ``running`` under that worker, else :class:`RunAbandoned` and nothing is inserted.
        """
        return self._insert("trades", run_hash, data, owner)

    def insert_equity(self, run_hash: str, data: FrameLike, *, owner: str | None = None) -> int:
        """Insert a run's equity curve (one row per bar); the number of rows inserted (``owner``: see
        :meth:`insert_trades`)."""
        return self._insert("equity", run_hash, data, owner)

    def insert_equity_runs(self, curves: Sequence[tuple[str, FrameLike]], *, owner: str | None = None) -> int:
        """Insert the equity curves of several runs (``(run_hash, curve)`` pairs) in one call: one transaction
        that checks every run's ownership fence (``owner``, as :meth:`insert_trades`) and then inserts every
        row. Stores exactly the rows of one :meth:`insert_equity` per run; atomic as a whole (any failure --
        bad data, one run no longer owned -- inserts nothing). The error is the one :meth:`insert_equity`
        raises, for the run it concerns (a refused fence or a CHECK: that run; otherwise the first run)."""
        from alphaforge.db import bulk

        return bulk.insert_runs(self, "equity", curves, owner)

    def prepare_bulk(self, rows: int) -> None:
        """Get ready for bulk calls of about ``rows`` rows: on a SQLite file, when they will go to the helper
        process, start one in the background now (:func:`alphaforge.db.bulk_sqlite.prestart`). Never changes
        what is written; a helper that fails to start fails the bulk call that needs it, as before."""
        from alphaforge.db import bulk_sqlite
        from alphaforge.db.bulk import SqliteAdbcBulk

        if isinstance(self._backend(rows), SqliteAdbcBulk):
            bulk_sqlite.prestart()

    def read_trades(self, run_hash: str) -> pd.DataFrame:
        """The run's trades in ``seq`` order (empty when there are none)."""
        return self._read("trades", run_hash)

    def read_equity(self, run_hash: str) -> pd.DataFrame:
        """The run's equity curve in ts order (empty when there is none)."""
        return self._read("equity", run_hash)

    def _insert(self, table: str, run_hash: str, data: FrameLike, owner: str | None = None) -> int:
        from alphaforge.db import bulk

        return bulk.insert_runs(self, table, [(run_hash, data)], owner)

    def _read(self, table: str, run_hash: str) -> pd.DataFrame:
        from alphaforge.db import bulk

        return bulk.read(self, table, run_hash)
