"""The fan-out rule shared by the permutation test's worker processes and the bootstrap's threads: the CPUs
in the main process, 1 inside any worker process (a sweep's points run side by side instead), the
environment variable over both."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from alphaforge.validation.bootstrap import bootstrap_workers
from alphaforge.validation.permutation import permutation_workers

BIG_PERMUTATIONS, BIG_BARS, BIG_TRIALS = 1000, 500_000, 100_000


def _fan_outs() -> tuple[int, int]:
    return permutation_workers(BIG_PERMUTATIONS, BIG_BARS), bootstrap_workers(BIG_TRIALS)


def _report(queue: mp.Queue) -> None:  # type: ignore[type-arg]
    queue.put(_fan_outs())


def _in_a_worker_process() -> tuple[int, int]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_report, args=(queue,), name="sweep-worker")
    proc.start()
    got = queue.get(timeout=30)
    proc.join(30)
    assert proc.exitcode == 0
    return got  # type: ignore[no-any-return]


def test_the_main_process_fans_out_to_its_cpus_a_worker_process_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPHAFORGE_PERMUTATION_WORKERS", raising=False)
    monkeypatch.delenv("ALPHAFORGE_BOOTSTRAP_WORKERS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert _fan_outs() == (cpus, cpus)
    assert _in_a_worker_process() == (1, 1)


def test_the_environment_sets_the_fan_out_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "3")
    monkeypatch.setenv("ALPHAFORGE_BOOTSTRAP_WORKERS", "5")
    assert _fan_outs() == (3, 5)
    assert _in_a_worker_process() == (3, 5)
