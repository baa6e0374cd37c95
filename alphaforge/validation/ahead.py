"""A run's permutation test started ahead of its other stages.

The permutation test needs only the loaded bars, the strategy and the execution parameters — not the features,
the backtest or the metrics the run computes first. When it runs on worker processes, starting it as soon as
the bars are loaded puts the second core to work while this process builds the features and backtests (one
core), and hides the workers' start-up. Its result is the one :func:`run_validation` would compute (the same
seed, the same null distribution bit for bit); only the ``validation`` phase's recorded time is shorter.

If the run fails first, :meth:`PermutationsAhead.close` stops the test at its next batch and waits for the
batches in flight (a few permutations): nothing outlives the run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from alphaforge.hashing import component_seed
from alphaforge.validation.permutation import PermutationResult, permutation_test, permutation_workers

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd


class PermutationsAhead:
    """The permutation test of one run, computing on a side thread (its permutations on worker processes)."""

    def __init__(self, frame: pd.DataFrame, strategy: str, params: Mapping[str, Any], execution: Any, *,
                 n: int, seed_root: int) -> None:
        self.n = n
        self._stop = threading.Event()
        self._side = ThreadPoolExecutor(1, thread_name_prefix="alphaforge-permutations")
        self._future: Future[PermutationResult | None] = self._side.submit(
            permutation_test, frame, strategy, params, execution, n=n,
            seed=component_seed(seed_root, "permutation"), stop=self._stop)

    @classmethod
    def start(cls, frame: pd.DataFrame, strategy: str, params: Mapping[str, Any], execution: Any, *, n: int,
              seed_root: int) -> PermutationsAhead | None:
        """The test started now when it will run on worker processes (:func:`permutation_workers`), else
        ``None``: a test in this process gains nothing from starting early."""
        if n <= 0 or permutation_workers(n, len(frame)) <= 1:
            return None
        return cls(frame, strategy, params, execution, n=n, seed_root=seed_root)

    def result(self) -> PermutationResult | None:
        """The test's result (waits for it; re-raises its error)."""
        return self._future.result()

    def close(self) -> None:
        """Stop the test if it still runs and wait for its thread (idempotent)."""
        self._stop.set()
        self._side.shutdown(wait=True)

    def __enter__(self) -> PermutationsAhead:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
