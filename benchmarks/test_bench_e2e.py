"""End to end: a 500k-bar dataset (CI: 50k) through every phase, and the identical resubmission.

Ours: ``Pipeline.run`` on a fresh SQLite database (5 indicators, backtest, 200 permutations, 1000 bootstrap
trials, 5-fold walk-forward, persist). Baseline: the same compute stages called directly, without the
database, the cache or the unit of work — so the ratio is what orchestration and persistence cost.
Targets (full size): ≤ 15 s end to end, peak RSS ≤ 1.5 GB, identical resubmission ≤ 0.2 s. Each measurement
runs in a child process so that the peak RSS is that of one run: ``VmHWM`` from ``/proc/self/status`` (the
peak resident set of the child's own address space). ``ru_maxrss`` is not used: Linux carries it over from the
forking parent across ``exec``, so after the bulk benchmarks it reported pytest's own ~2 GB (the 2,085 MB
"failure" of the full run).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CI_SIZE, report, size

CHILD = r"""
import json, sys, time
from alphaforge import Store, load_config
from alphaforge.data import load_ohlcv
from alphaforge.runs.pipeline import Pipeline, execution_params
mode, data, db, cache = sys.argv[1:5]
config = load_config({
    "symbol": "BENCH", "seed": 1,
    "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 50}},
    "validation": {"permutation": {"n": 200}, "bootstrap": {"n": 1000}, "walk_forward": {"folds": 5}},
    "features": {"indicators": [{"name": "rsi"}, {"name": "atr"}, {"name": "volatility", "params": {"window": 20}}]},
})
out = {}
if mode == "pipeline":
    store = Store(db)
    start = time.perf_counter()
    outcome = Pipeline(store, cache_dir=cache).run(config, data)
    out["seconds"] = time.perf_counter() - start
    out["phases"] = outcome.phases
    start = time.perf_counter()
    again = Pipeline(store, cache_dir=cache).run(config, data)
    out["reuse_seconds"] = time.perf_counter() - start
    assert again.reused
else:
    from alphaforge.backtest import compute_features, simulate
    from alphaforge.features.indicators import get_indicator
    from alphaforge.metrics import performance_metrics
    from alphaforge.validation import run_validation
    start = time.perf_counter()
    dataset = load_ohlcv(data)
    frame = dataset.frame
    execution = execution_params(config, dataset)
    features = compute_features("sma_cross", config.strategy.params, frame)
    for item in config.features.indicators:
        get_indicator(item["name"]).compute(frame, item["params"])
    result = simulate(frame, "sma_cross", config.strategy.params, execution, features=features)
    performance_metrics(result, execution.bars_per_year)
    run_validation(frame, result.returns, strategy="sma_cross", params=config.strategy.params,
                   execution=execution, config=config.validation,
                   seed_root=config.seed_root, bootstrap_seed=1)
    out["seconds"] = time.perf_counter() - start
with open("/proc/self/status") as fh:  # VmHWM: this process's own peak (ru_maxrss is inherited from pytest)
    out["max_rss_mb"] = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
print(json.dumps(out))
"""


def _child(mode: str, data: Path, tmp: Path) -> dict:
    db = f"sqlite:///{tmp / f'{mode}.db'}"
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(data), db, str(tmp / f"cache_{mode}")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_end_to_end_500k_bars(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from alphaforge.data.synthetic import synthetic_ohlcv

    n = size(500_000, 50_000)
    data = tmp_path / "bars.parquet"
    synthetic_ohlcv(n, seed=1, freq="5min").to_parquet(data, index=False)
    baseline = _child("compute", data, tmp_path)
    ours = benchmark.pedantic(lambda: _child("pipeline", data, tmp_path / "run"), rounds=1, iterations=1) \
        if (tmp_path / "run").mkdir() is None else None
    assert ours is not None
    benchmark.extra_info.update({"bars": n, "phases_ms": ours["phases"], "max_rss_mb": round(ours["max_rss_mb"]),
                                 "reuse_s": round(ours["reuse_seconds"], 4),
                                 "baseline_max_rss_mb": round(baseline["max_rss_mb"])})
    print(f"\n[e2e] {n} bars: {ours['seconds']:.2f}s (phases ms {ours['phases']}), "
          f"peak RSS {ours['max_rss_mb']:.0f} MB, identical resubmission {ours['reuse_seconds'] * 1000:.0f} ms")
    # CI floor 0.3 since the compiled kernels (2026-11-30): the bare compute baseline got faster (validation),
    # the persisted pipeline less so; measured 0.40 at CI size, 0.78 at full size (load 5)
    report(benchmark, "e2e pipeline vs bare compute", ours["seconds"], baseline["seconds"], floor=0.6, ci_floor=0.3)
    if not CI_SIZE:
        assert ours["seconds"] <= 15.0
        assert ours["max_rss_mb"] <= 1536
        assert ours["reuse_seconds"] <= 0.2


# -- through the CLI, memory summed over the process tree -----------------------------------------------

CLI_CONFIG = """\
symbol = "BENCH"
seed = 1

[strategy]
name = "sma_cross"
params = { fast = 10, slow = 50 }

[validation.permutation]
n = 200

[validation.bootstrap]
n = 1000

[validation.walk_forward]
folds = 5

[features]
indicators = [{ name = "rsi" }, { name = "atr" }, { name = "volatility", params = { window = 20 } }]
"""
E2E_TARGET_S, E2E_TARGET_MB, RESUBMIT_TARGET_S = 6.0, 1024, 0.6  # issue #13, full size
#: Pss is read on every 25th 20 ms sample (500 ms): the kernel answers it by walking the page tables of each
#: process under its memory lock, ~11 ms of CPU and up to ~40 ms of stalling the run per sample at 500k bars.
#: Read on every sample (as before 2026-12-01), the sampler took half a core of the two the run itself uses;
#: VmRSS alone (from /proc/PID/status) costs ~0.5 ms a sample
PSS_EVERY = 25


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from each thread's ``/proc/PID/task/TID/children`` (a worker may be
    started by any thread): a few small reads instead of a scan of every process on the machine."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
        except OSError:  # the process or thread ended meanwhile
            continue
    return found


def _tree_memory_mb(root: int, *, pss: bool = True) -> tuple[float, float]:
    """Memory of ``root`` and every descendant, summed (MB): ``VmRSS`` (resident pages, a page shared by
    several processes counted in each: the forked workers share their fork server's) and, when ``pss``,
    ``Pss`` from ``smaps_rollup`` (each shared page split between its sharers: no double counting; the kernel
    walks every page table to answer, milliseconds per large process, so it is read less often)."""
    rss = pss_kb = 0
    for pid in _descendants(root):
        try:
            rss += _field_kb(f"/proc/{pid}/status", "VmRSS:")
            pss_kb += _field_kb(f"/proc/{pid}/smaps_rollup", "Pss:") if pss else 0
        except OSError:
            continue
    return rss / 1024, pss_kb / 1024


def _field_kb(path: str, name: str) -> int:
    with open(path) as fh:
        return next((int(line.split()[1]) for line in fh if line.startswith(name)), 0)


def _cli_run(argv: list[str]) -> tuple[float, tuple[float, float], dict]:
    """Wall seconds, the peaks of the summed RSS and PSS (MB, sampled every 20 ms) and the parsed ``--json``
    summary."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, peak_pss = 0.0, 0.0
    for sample in itertools.count():
        if proc.poll() is not None:
            break
        rss, pss = _tree_memory_mb(proc.pid, pss=sample % PSS_EVERY == 0)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        time.sleep(0.02)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return wall, (peak, peak_pss), json.loads(out)


def test_end_to_end_500k_bars_through_the_cli(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``alphaforge run`` on 500k bars (CI: 50k), default validation, fresh SQLite database: wall time, each
    phase's time, the peak resident memory summed over the CLI process and every worker it starts (sampled
    from ``/proc`` every 20 ms), the worker counts; then the identical resubmission (answered from the
    database). Baseline: the same data through the bare compute stages (``_child("compute")``)."""
    from alphaforge.data.synthetic import synthetic_ohlcv
    from alphaforge.validation.bootstrap import bootstrap_workers
    from alphaforge.validation.permutation import permutation_workers

    n = size(500_000, 50_000)
    data, config = tmp_path / "bars.parquet", tmp_path / "config.toml"
    synthetic_ohlcv(n, seed=1, freq="5min").to_parquet(data, index=False)
    config.write_text(CLI_CONFIG, encoding="utf-8")
    cli = Path(sys.executable).with_name("alphaforge")
    argv = [str(cli) if cli.is_file() else sys.executable, *([] if cli.is_file() else ["-m", "alphaforge.cli.main"]),
            "run", "--data", str(data), "--config", str(config), "--db", f"sqlite:///{tmp_path / 'cli.db'}", "--json"]
    baseline = _child("compute", data, tmp_path)
    wall, (peak_mb, peak_pss_mb), summary = _cli_run(argv)
    again_wall, _, again = _cli_run(argv)
    assert again["reused"] and again["run_hash"] == summary["run_hash"]
    workers = {"permutation": permutation_workers(200, n), "bootstrap_threads": bootstrap_workers(1000)}
    benchmark.extra_info.update({"bars": n, "wall_s": round(wall, 3), "phases_ms": summary["phases"],
                                 "peak_tree_rss_mb": round(peak_mb), "peak_tree_pss_mb": round(peak_pss_mb),
                                 "resubmit_s": round(again_wall, 3),
                                 "workers": workers, "memory": "peak of the sums of VmRSS (asserted, 20 ms samples) and of Pss "
                                           "(500 ms samples) over the process tree"})
    print(f"\n[e2e cli] {n} bars: {wall:.2f} s wall (target {E2E_TARGET_S:.0f} s); phases ms {summary['phases']}; "
          f"workers {workers}; peak memory {peak_mb:.0f} MB = VmRSS summed over the CLI process and its "
          f"descendants, sampled every 20 ms (target {E2E_TARGET_MB} MB; the same sum of Pss every 500 ms, shared pages "
          f"split between their sharers: {peak_pss_mb:.0f} MB); identical resubmission "
          f"{again_wall:.2f} s wall (target {RESUBMIT_TARGET_S} s)")
    # floors 0.4 / 0.1 since the compiled kernels (2026-11-30): the bare compute baseline got ~3x faster at CI
    # size (validation 2.0 -> 0.6 s at 50k bars), the CLI's fixed costs did not; measured 0.16 (CI size, 3
    # runs) and 0.46 (full size), load 5
    report(benchmark, "e2e through the CLI vs bare compute", wall, baseline["seconds"], floor=0.4, ci_floor=0.1)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    if not CI_SIZE:  # issue #13's targets, on this machine
        assert wall <= E2E_TARGET_S, f"{wall:.2f} s > {E2E_TARGET_S} s"
        assert peak_mb <= E2E_TARGET_MB, f"{peak_mb:.0f} MB > {E2E_TARGET_MB} MB"
        assert again_wall <= RESUBMIT_TARGET_S, f"resubmission {again_wall:.2f} s > {RESUBMIT_TARGET_S} s"
