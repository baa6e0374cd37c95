"""Validation: bootstrap vs arch, permutation throughput vs a naive loop, walk-forward vs naive re-simulation.

* Bootstrap: per-trial time on 500k returns (CI: 100k), two series. AR(1) phi = 0.4 takes the block path at
  the block our HADJ-BB rule picks (jitter 0): baseline ``arch.bootstrap.CircularBlockBootstrap(block, r)``;
  a random walk's returns (phi = 0) take the IID path (HADJ-BB falls back to simple): baseline
  ``arch.bootstrap.IIDBootstrap(r)``. Both baselines ``.apply(f)`` with ``f`` a lean numpy Sharpe + CAGR of
  the materialized resample (the same statistics). Ours = block-sum tables, each trial's starts summed per
  cache-sized table chunk by the compiled kernel (``validation._resample``), on the default worker threads
  (one worker printed too, for the scaling). Full size: <= 1.5 ms per trial and >= 3x (the issue's
  targets); CI size: the ratio floors.
* Permutation: 20 permutations x 500k bars (CI: 10 x 50k) of each of the six built-in strategies, one
  process — ms per permutation. Ours = ``permutation_test(workers=1)`` (vectorized price rebuild, the
  strategy prepared once and re-run on the permuted arrays); baseline = the naive loop a
  first implementation would write: per permutation, rebuild the frame with pandas (shift, log, iloc-permute,
  cumsum, exp) and call ``simulate`` for the returns. The strategy run is the same engine in both, so the
  ratio is modest by construction. Floor: 1.2x.
* Permutation kernels (issue #13 target 3): the same permutation test per strategy with the compiled kernels
  (ours) and with every one disabled (the pure-Python ledger loop, the numpy rebuild, the numpy / pandas
  indicators and rules: what runs without a compiler), null distributions asserted identical; ms per permutation as
  process CPU time (one core's cost), the 20 ms target asserted at full size. Floor: 1.5x (CI 1.3x).
* Walk-forward optimize: 100k bars x 12 grid points x 5 folds (CI: 50k). Ours = one ``strategy_returns``
  per grid point, sliced per fold; baseline = naive re-simulation of every grid point on every fold's
  training window plus the chosen point up to the fold end (same choices — asserted). Floor: 2x.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import CI_SIZE, RECORD_ONLY, best_time, report, size

from alphaforge import metrics
from alphaforge.backtest import engine as engine_module
from alphaforge.backtest import strategies as strategies_module
from alphaforge.backtest.engine import ExecutionParams, simulate
from alphaforge.backtest.strategies import STRATEGIES
from alphaforge.config import WalkForwardConfig
from alphaforge.enums import WalkForwardMode
from alphaforge.features import chunked as chunked_module
from alphaforge.hashing import rng_for
from alphaforge.validation import permutation as permutation_module
from alphaforge.validation.bootstrap import bootstrap_distribution, bootstrap_workers, choose_block_length
from alphaforge.validation.permutation import permutation_test
from alphaforge.validation.synthetic import ar1_returns, ohlcv_frame
from alphaforge.validation.walk_forward import fold_edges, grid_candidates, walk_forward

BPY = 252.0
EXEC = ExecutionParams(fee_bps=1.0, slippage_bps=0.5, allow_short=True, bars_per_year=252.0)


BOOTSTRAP_TARGET_S = 1.5e-3  # issue #13: <= 1.5 ms per trial at 500k returns, on both paths (full size)


@pytest.mark.parametrize("series", ["random_walk", "ar1"])
def test_bootstrap_vs_arch_per_trial(benchmark: Any, series: str) -> None:
    """Per trial, 500k returns: a random walk's returns take the IID path (``hadj_bb`` falls back to simple;
    baseline arch ``IIDBootstrap``), AR(1) phi = 0.4 the block path (baseline ``CircularBlockBootstrap`` at
    the same block). Ours runs its default worker threads (printed) and, for the thread scaling, one worker
    (printed, not asserted). Full size asserts the issue's 1.5 ms per trial and 3x; CI size the ratio floors."""
    from arch.bootstrap import CircularBlockBootstrap, IIDBootstrap

    from alphaforge.validation.resample import COMPILED

    n = size(500_000, 100_000)
    r = ar1_returns(n, 0.0 if series == "random_walk" else 0.4, seed=3, mu=2e-4)
    block, reason = choose_block_length(r, jitter=0, rng=rng_for(1, "jitter"))
    assert (block is None) == (series == "random_walk"), reason
    ours_trials, arch_trials = 1000, 20  # ours: the default n, setup included
    workers = bootstrap_workers(ours_trials)

    def stats(x: np.ndarray) -> np.ndarray:
        return np.array([x.mean() / x.std(ddof=1) * np.sqrt(BPY), np.expm1(np.log1p(x).sum() * BPY / len(x))])

    def ours(threads: int | None = None) -> None:
        bootstrap_distribution(r, block_length=block or 1, n=ours_trials, seed=7, bars_per_year=BPY,
                               workers=threads)

    def baseline() -> None:
        boot = IIDBootstrap(r, seed=7) if block is None else CircularBlockBootstrap(block, r, seed=7)
        boot.apply(stats, arch_trials)

    ours_total = best_time(ours, rounds=5)  # best of 5: the absolute target is asserted on a shared machine
    ours_s = ours_total / ours_trials
    one_s = best_time(lambda: ours(1), rounds=2) / ours_trials
    base_s = best_time(baseline, rounds=2) / arch_trials
    benchmark.extra_info.update({"n": n, "block_length": block, "reason": reason, "trials": ours_trials,
                                 "ours_total_s": round(ours_total, 4), "workers": workers,
                                 "ours_ms_per_trial": round(ours_s * 1e3, 4),
                                 "one_worker_ms_per_trial": round(one_s * 1e3, 4),
                                 "arch_ms_per_trial": round(base_s * 1e3, 4), "compiled_kernel": COMPILED})
    print(f"\n[bootstrap {series}] n={n} block={block or 1} kernel={'C' if COMPILED else 'numpy'}: "
          f"{ours_trials} trials in {ours_total:.3f}s = {ours_s * 1e3:.3f} ms/trial on {workers} workers, "
          f"{one_s * 1e3:.3f} ms/trial on 1 (scaling {one_s / ours_s:.2f}x); arch {base_s * 1e3:.2f} ms/trial "
          f"(target {BOOTSTRAP_TARGET_S * 1e3:.1f} ms/trial at 500k)")
    report(benchmark, f"bootstrap per trial, {n} returns, {series} block {block or 1}: ours vs arch",
           ours_s, base_s, floor=3.0, ci_floor=2.0 if block is None else 8.0)
    if not CI_SIZE and not RECORD_ONLY:
        assert ours_s <= BOOTSTRAP_TARGET_S, f"{ours_s * 1e3:.3f} ms/trial > {BOOTSTRAP_TARGET_S * 1e3:.1f} ms"
    benchmark.pedantic(ours, rounds=1, iterations=1)


def _naive_permutation_stats(frame: pd.DataFrame, n_perm: int, seed: int, strategy: str = "sma_cross",
                             params: dict[str, Any] | None = None) -> np.ndarray:
    """What a first implementation does: pandas rebuild per permutation, then a full simulate."""
    rng = np.random.default_rng(seed)
    prev_close = frame["close"].astype("float64").shift(1)
    rel = pd.DataFrame({c: np.log(frame[c].astype("float64") / prev_close) for c in ("open", "high", "low", "close")})
    rel["volume"] = frame["volume"]
    body = rel.iloc[1:]
    out = np.empty(n_perm)
    for i in range(n_perm):
        shuffled = body.iloc[rng.permutation(len(body))].reset_index(drop=True)
        log_close = np.log(float(frame["close"].iloc[0])) + shuffled["close"].cumsum()
        prev = log_close.shift(1).fillna(np.log(float(frame["close"].iloc[0])))
        rebuilt = pd.DataFrame({
            "ts": frame["ts"].iloc[1:].to_numpy(),
            "open": np.exp(prev + shuffled["open"]).astype("float32"),
            "high": np.exp(prev + shuffled["high"]).astype("float32"),
            "low": np.exp(prev + shuffled["low"]).astype("float32"),
            "close": np.exp(log_close).astype("float32"),
            "volume": shuffled["volume"].to_numpy(),
        })
        permuted = pd.concat([frame.iloc[:1], rebuilt], ignore_index=True)
        out[i] = metrics.sharpe(simulate(permuted, strategy, params or {}, EXEC).returns, BPY)
    return out


PERMUTATION_TARGET_S = 0.020  # issue #13: <= 20 ms per permutation at 500k bars, one core


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_permutation_throughput(benchmark: Any, strategy: str) -> None:
    """Per permutation, one process (workers=1), every built-in strategy at its default parameters."""
    n_bars, n_perm = size(500_000, 50_000), size(200, 10)
    base_perm = size(5, 5)
    frame = ohlcv_frame(n_bars, phi=0.05, seed=2, mu=1e-4)

    def ours() -> None:
        permutation_test(frame, strategy, {}, EXEC, n=n_perm, seed=5, workers=1)

    ours_s = best_time(ours, rounds=2) / n_perm
    base_s = best_time(lambda: _naive_permutation_stats(frame, base_perm, 5, strategy), rounds=1) / base_perm
    benchmark.extra_info.update({"n_bars": n_bars, "n_perm": n_perm, "strategy": strategy, "workers": 1,
                                 "ours_ms_per_perm": round(ours_s * 1e3, 2),
                                 "baseline_perms_per_s": round(1 / base_s, 2)})
    print(f"\n[permutation {strategy}] {n_perm} perms x {n_bars} bars, 1 worker: {ours_s * 1e3:.1f} ms/perm "
          f"(target {PERMUTATION_TARGET_S * 1e3:.0f} ms; setup and the observed run included), "
          f"naive {base_s * 1e3:.1f} ms/perm")
    report(benchmark, f"permutation per perm, {strategy}, {n_bars} bars: ours vs naive pandas+simulate", ours_s,
           base_s, floor=1.2, ci_floor=0.91)
    benchmark.pedantic(ours, rounds=1, iterations=1)


def _cpu_and_wall(fn: Any, rounds: int) -> tuple[float, float]:
    """Best process CPU time and best wall time of ``rounds`` calls (CPU time: the cost on one core, which a
    loaded shared machine does not inflate by the time spent waiting for a core)."""
    cpu = wall = float("inf")
    for _ in range(rounds):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_permutation_per_perm_vs_python_kernels(benchmark: Any, strategy: str, monkeypatch: Any) -> None:
    """Issue #13 target 3, per strategy: ms per permutation at 500k bars (CI: 50k) on one core
    (``workers=1``), setup and the observed run included, at the default validation's 200 permutations (the
    one-time setup — the offsets table, the observed backtest — is spread over them as in a real run). Ours = the compiled kernels (the ledger, the price
    rebuild, the indicators' window sums / recursions and the signal rules in C); baseline = the same
    permutation_test with every kernel disabled, i.e. the pure-Python ledger loop, the numpy rebuild, numpy /
    pandas indicators and the numpy rules (what a build without a compiler runs).
    The null distributions are asserted identical. The 20 ms target is asserted at full size on the process
    CPU time (one core's cost; the wall time is printed beside it)."""
    n_bars, n_perm = size(500_000, 50_000), size(200, 10)
    base_perm = size(5, 5)
    frame = ohlcv_frame(n_bars, phi=0.05, seed=2, mu=1e-4)
    results: dict[str, Any] = {}

    def run(key: str, n: int) -> None:
        results[key] = permutation_test(frame, strategy, {}, EXEC, n=n, seed=5, workers=1)

    ours_cpu, ours_wall = _cpu_and_wall(lambda: run("ours", n_perm), rounds=2)
    ours_cpu, ours_wall = ours_cpu / n_perm, ours_wall / n_perm
    run("ours_base", base_perm)
    with monkeypatch.context() as m:
        for module, name in ((engine_module, "_ledger"), (permutation_module, "_permute"),
                             (chunked_module, "_rolling"), (strategies_module, "_signals")):
            m.setattr(module, name, None)
        base_cpu, base_wall = _cpu_and_wall(lambda: run("python", base_perm), rounds=1)
    base_cpu, base_wall = base_cpu / base_perm, base_wall / base_perm
    assert results["python"] == results["ours_base"]  # same p-value, same null digest: bit for bit
    benchmark.extra_info.update({"n_bars": n_bars, "n_perm": n_perm, "strategy": strategy, "workers": 1,
                                 "ours_cpu_ms_per_perm": round(ours_cpu * 1e3, 2),
                                 "ours_wall_ms_per_perm": round(ours_wall * 1e3, 2),
                                 "python_cpu_ms_per_perm": round(base_cpu * 1e3, 2),
                                 "target_ms": PERMUTATION_TARGET_S * 1e3})
    print(f"\n[permutation {strategy}] {n_bars} bars, 1 worker: ours {ours_cpu * 1e3:.1f} ms/perm CPU "
          f"({ours_wall * 1e3:.1f} wall), all kernels off {base_cpu * 1e3:.1f} ms/perm CPU "
          f"({base_wall * 1e3:.1f} wall); target {PERMUTATION_TARGET_S * 1e3:.0f} ms at 500k")
    report(benchmark, f"permutation per perm CPU, {strategy}, {n_bars} bars: C kernels vs all kernels off",
           ours_cpu, base_cpu, floor=1.5, ci_floor=1.3)
    if not CI_SIZE and not RECORD_ONLY:
        assert ours_cpu <= PERMUTATION_TARGET_S, (
            f"{strategy}: {ours_cpu * 1e3:.1f} ms per permutation > {PERMUTATION_TARGET_S * 1e3:.0f} ms")
    benchmark.pedantic(lambda: run("ours", n_perm), rounds=1, iterations=1)


GRID = {"fast": [5, 10, 20], "slow": [30, 50, 100, 200]}


def _naive_walk_forward(frame: pd.DataFrame, folds: int) -> list[dict[str, Any]]:
    points, _ = grid_candidates("sma_cross", {}, GRID)
    edges = fold_edges(len(frame), folds)
    chosen = []
    for j in range(1, folds + 1):
        train = frame.iloc[: edges[j]].reset_index(drop=True)
        scores = [metrics.sharpe(simulate(train, "sma_cross", p, EXEC).returns, BPY) for p in points]
        best = points[int(np.argmax(scores))]
        simulate(frame.iloc[: edges[j + 1]].reset_index(drop=True), "sma_cross", best, EXEC)
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("folds", [5])
def test_walk_forward_optimize_vs_naive(benchmark: Any, folds: int) -> None:
    n_bars = size(100_000, 50_000)
    frame = ohlcv_frame(n_bars, phi=0.05, seed=4, mu=1e-4)
    result: dict[str, Any] = {}

    def ours() -> None:
        config = WalkForwardConfig(folds, WalkForwardMode.OPTIMIZE, GRID)
        result["wf"] = walk_forward(frame, "sma_cross", {}, EXEC, config, bars_per_year=BPY)

    def baseline() -> None:
        result["naive"] = _naive_walk_forward(frame, folds)

    ours_s = best_time(ours, rounds=2)
    base_s = best_time(baseline, rounds=1)
    assert [f.params for f in result["wf"].folds] == result["naive"]
    benchmark.extra_info.update({"n_bars": n_bars, "grid_points": 12, "folds": folds})
    report(benchmark, f"walk-forward optimize {n_bars} bars x 12 points x {folds} folds: ours vs naive",
           ours_s, base_s, floor=2.0, ci_floor=1.8)
    benchmark.pedantic(ours, rounds=1, iterations=1)
