"""How many workers a validation stage fans out to: one rule for the permutation test's processes and the
bootstrap's threads (their results never depend on it).

``$<env_var>`` if set; else 1 inside a worker process — a sweep's, a Dask worker's or a permutation worker's
process (any process but the main one) must not fan out again: its siblings already occupy the other cores,
and a sweep's throughput comes from running its points side by side; else the CPUs available to this process.
"""

from __future__ import annotations

import multiprocessing as mp
import os


def fan_out(env_var: str) -> int:
    """The workers allowed here (see the module docstring); always >= 1."""
    env = os.environ.get(env_var)
    if env:
        return max(1, int(env))
    if mp.current_process().name != "MainProcess":
        return 1
    return max(1, len(os.sched_getaffinity(0)))
