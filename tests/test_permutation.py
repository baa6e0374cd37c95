"""Permutation test: coherent permuted frames, exact p-value rule, null calibration, power on a planted edge."""

from __future__ import annotations

import os
from pathlib import Path

import _metric_oracle as oracle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.backtest.engine import ExecutionParams, strategy_returns
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import component_seed, sha256_hex
from alphaforge.validation import permutation as pmod
from alphaforge.validation.permutation import (
    bar_offsets,
    permutation_pvalue,
    permutation_test,
    permuted_frames,
)
from alphaforge.validation.synthetic import ohlcv_frame

NO_COST = ExecutionParams(fee_bps=0.0, slippage_bps=0.0, borrow_bps_annual=0.0, allow_short=True, bars_per_year=252.0)
MOMENTUM = {"lookback": 1, "threshold": 0.0}


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1), phi=st.sampled_from([0.0, 0.5]))
def test_permuted_frames_are_coherent_and_preserve_the_bars(n: int, seed: int, phi: float) -> None:
    frame = ohlcv_frame(n, phi=phi, seed=seed % 1000, sigma=0.02)
    _, off_in = bar_offsets(frame)
    replay = np.random.default_rng(seed)  # permutation i is the i-th Generator.permutation(n - 1) call
    for out in permuted_frames(frame, np.random.default_rng(seed), 3):
        perm = replay.permutation(n - 1)
        assert list(out.columns) == list(frame.columns)
        assert out.dtypes.to_dict() == frame.dtypes.to_dict()
        o, h, lo, c = (out[k].to_numpy() for k in ("open", "high", "low", "close"))
        assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (lo > 0).all()
        np.testing.assert_array_equal(out["ts"].to_numpy(), frame["ts"].to_numpy())
        assert out.iloc[0].equals(frame.iloc[0])  # bar 0 unchanged
        # bar t of the permuted frame is bar perm[t-1]+1 of the original: all four offsets and the volume jointly
        _, off_out = bar_offsets(out)
        np.testing.assert_allclose(off_out, off_in[:, perm], atol=3e-6)
        np.testing.assert_array_equal(out["volume"].to_numpy()[1:], frame["volume"].to_numpy()[1:][perm])


def test_permutations_really_reorder() -> None:
    frame = ohlcv_frame(200, seed=1)
    outs = list(permuted_frames(frame, np.random.default_rng(0), 2))
    assert not np.array_equal(outs[0]["close"].to_numpy(), frame["close"].to_numpy())
    assert not np.array_equal(outs[0]["close"].to_numpy(), outs[1]["close"].to_numpy())
    # the final close is invariant (same multiset of log returns), up to float32 rounding
    assert outs[0]["close"].iloc[-1] == pytest.approx(frame["close"].iloc[-1], rel=1e-5)


def test_pvalue_is_the_documented_rank_rule_and_digest_matches_the_null() -> None:
    frame = ohlcv_frame(400, phi=0.1, seed=3)
    seed, n = 1234, 30
    res = permutation_test(frame, "sma_cross", {"fast": 5, "slow": 20}, NO_COST, n=n, seed=seed)
    assert res is not None
    stat = lambda r: oracle.sharpe(r, NO_COST.bars_per_year)  # noqa: E731
    observed = stat(strategy_returns(frame, "sma_cross", {"fast": 5, "slow": 20}, NO_COST))
    null = np.array([stat(strategy_returns(f, "sma_cross", {"fast": 5, "slow": 20}, NO_COST))
                     for f in permuted_frames(frame, np.random.default_rng(seed), n)])
    assert res.observed == pytest.approx(observed, rel=1e-9, abs=1e-12)
    assert res.pvalue == (1 + np.count_nonzero(null >= observed - 1e-10 * max(1.0, abs(observed)))) / (1 + n)
    assert 0 < res.pvalue <= 1
    assert res.null_digest == sha256_hex(null.astype("<f4").tobytes())
    assert res.null_mean == pytest.approx(null.mean()) and res.null_std == pytest.approx(null.std(ddof=1))


def test_disabled_and_bad_arguments() -> None:
    frame = ohlcv_frame(100, seed=1)
    assert permutation_test(frame, "buy_and_hold", {}, NO_COST, n=0, seed=1) is None
    with pytest.raises(ConfigInvalid):
        permutation_test(frame, "buy_and_hold", {}, NO_COST, n=-1, seed=1)
    with pytest.raises(ConfigInvalid):
        permutation_test(frame, "buy_and_hold", {}, NO_COST, n=5, seed=2**32)
    with pytest.raises(ConfigInvalid):
        permutation_test(frame, "buy_and_hold", {}, NO_COST, n=5, seed=1, statistic="sortino")
    bad = frame.copy()
    bad.loc[5, "close"] = -1.0
    with pytest.raises(DataInvalid, match="row 5"):
        permutation_test(bad, "buy_and_hold", {}, NO_COST, n=5, seed=1)


def test_deterministic_per_seed_and_independent_of_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = ohlcv_frame(300, phi=0.2, seed=4)
    seed = component_seed(99, "permutation")
    a = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=20, seed=seed)
    b = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=20, seed=seed)
    c = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=20, seed=component_seed(100, "permutation"))
    assert a == b and a is not None and c is not None
    assert a.null_digest != c.null_digest
    monkeypatch.setattr(pmod, "_BATCH_VALUES", 4 * 300 * 3)  # three permutations per batch
    assert permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=20, seed=seed) == a


def test_iid_noise_gives_calibrated_pvalues() -> None:
    """Under IID bars the test is exact: p-values are (discretely) uniform, so not concentrated near 0."""
    pvalues = []
    for seed in range(16):
        frame = ohlcv_frame(400, phi=0.0, seed=seed)
        res = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=39, seed=seed)
        assert res is not None
        pvalues.append(res.pvalue)
    p = np.array(pvalues)
    assert 0.3 <= p.mean() <= 0.7
    assert np.mean(p <= 0.05) <= 0.25
    assert np.mean(p > 0.5) >= 0.25
    # a single fixed IID case is not significant
    assert p[0] > 0.05


def test_planted_momentum_edge_gives_small_pvalue() -> None:
    frame = ohlcv_frame(1500, phi=0.35, seed=7, sigma=0.01)
    res = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=99, seed=5)
    assert res is not None
    assert res.observed > 1.0
    assert res.pvalue == pytest.approx(1 / 100)  # no permutation reaches the observed Sharpe
    assert res.null_mean < res.observed - 3 * res.null_std


def test_cagr_statistic() -> None:
    frame = ohlcv_frame(500, phi=0.35, seed=8)
    res = permutation_test(frame, "momentum", MOMENTUM, NO_COST, n=19, seed=5, statistic="cagr")
    assert res is not None and res.statistic == "cagr"
    assert res.observed == pytest.approx(oracle.cagr(strategy_returns(frame, "momentum", MOMENTUM, NO_COST), 252.0),
                                        rel=1e-9, abs=1e-12)
    assert res.pvalue == pytest.approx(1 / 20)


def test_order_free_statistic_ties_give_pvalue_one() -> None:
    """A rule that never trades has Sharpe 0 on every permutation: all ties, p = 1 (never a spurious edge)."""
    frame = ohlcv_frame(300, phi=0.3, seed=9)
    res = permutation_test(frame, "momentum", {"lookback": 1, "threshold": 10.0}, NO_COST, n=19, seed=1)
    assert res is not None and res.observed == 0.0 and res.pvalue == 1.0


def test_pvalue_rule_counts_rounding_ties_and_is_never_zero() -> None:
    assert permutation_pvalue(1.0, np.array([1.0 - 1e-13, 0.5])) == pytest.approx(2 / 3)
    assert permutation_pvalue(1.0, np.array([1.0 - 1e-6, 0.5])) == pytest.approx(1 / 3)
    assert permutation_pvalue(5.0, np.zeros(99)) == pytest.approx(0.01)
    assert permutation_pvalue(-5.0, np.zeros(9)) == 1.0


def test_parallel_permutations_give_the_identical_null_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    from alphaforge.backtest import ExecutionParams
    from alphaforge.data import dataset_from_frame
    from alphaforge.data.synthetic import synthetic_ohlcv
    from alphaforge.validation.permutation import permutation_test, permutation_workers

    frame = dataset_from_frame(synthetic_ohlcv(800, seed=4)).frame
    execution = ExecutionParams(allow_short=True, bars_per_year=252.0)
    serial = permutation_test(frame, "sma_cross", {"fast": 5, "slow": 20}, execution, n=23, seed=9, workers=1)
    parallel = permutation_test(frame, "sma_cross", {"fast": 5, "slow": 20}, execution, n=23, seed=9, workers=2)
    assert serial is not None and parallel == serial  # same p-value, same null digest, bit for bit
    assert permutation_workers(10, 100) == 1  # small jobs stay in process
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "3")
    assert permutation_workers(10, 100) == 3


@pytest.mark.parametrize("strategy", ["buy_and_hold", "sma_cross", "ema_cross", "momentum", "zscore_reversion",
                                      "breakout"])
def test_prepared_null_is_bit_identical_to_re_running_the_permuted_frames(strategy: str) -> None:
    """The fast path (prices rebuilt as arrays, strategy prepared once, no frame re-checks) gives exactly
    the statistic of strategy_returns on each permuted frame, for every built-in strategy."""
    frame = ohlcv_frame(3000, phi=0.1, seed=8)
    execution = ExecutionParams(fee_bps=2.0, slippage_bps=1.0, borrow_bps_annual=50.0, allow_short=True,
                                bars_per_year=252.0)
    stat = pmod.statistic_fn("sharpe", 252.0)
    expected = np.array([stat(strategy_returns(f, strategy, {}, execution))
                         for f in permuted_frames(frame, np.random.default_rng(77), 12)])
    res = permutation_test(frame, strategy, {}, execution, n=12, seed=77, workers=1)
    assert res is not None
    assert res.null_digest == sha256_hex(np.ascontiguousarray(expected, dtype="<f4").tobytes())
    assert res.null_mean == expected.mean()


def test_prestart_workers_starts_the_fork_server_only_for_a_parallel_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import forkserver

    from alphaforge.validation.permutation import prestart_workers

    monkeypatch.delenv("ALPHAFORGE_PERMUTATION_WORKERS", raising=False)
    assert prestart_workers(0, 10_000_000) is False  # disabled test
    assert prestart_workers(10, 1000) is False  # a small job runs in this process
    monkeypatch.setenv("ALPHAFORGE_PERMUTATION_WORKERS", "2")
    assert prestart_workers(10, 1000) is True
    pid = forkserver._forkserver._forkserver_pid
    assert pid is not None and os.waitpid(pid, os.WNOHANG) == (0, 0)  # running


_PANDAS_FREE_WORKER = """
import json, sys
class _Refuse:  # a worker must run without pandas (and the pyarrow it loads): issue #13, memory
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "pyarrow"):
            raise ImportError(f"a permutation worker imported {name}")
sys.meta_path.insert(0, _Refuse())
import numpy as np
from alphaforge.backtest.engine import ExecutionParams
from alphaforge.validation import permutation as pmod
data = np.load(sys.argv[1])
columns = {k: data[k] for k in data.files if k != "perms"}
execution = ExecutionParams(fee_bps=2.0, slippage_bps=1.0, borrow_bps_annual=50.0, allow_short=True,
                            bars_per_year=252.0)
pmod._init_worker(columns, sys.argv[2], {}, execution, "sharpe")
print(json.dumps(pmod._null_of(data["perms"])))
"""


@pytest.mark.parametrize("strategy", ["buy_and_hold", "sma_cross", "ema_cross", "momentum", "zscore_reversion",
                                      "breakout"])
def test_a_worker_runs_without_pandas_and_gives_the_same_null(strategy: str, tmp_path: Path) -> None:
    """A permutation worker is sent the frame's columns as arrays (``frame_columns``) and never imports pandas
    (about 80 MB less resident per worker); its statistics equal the in-process ones bit for bit."""
    import json
    import subprocess
    import sys

    frame = ohlcv_frame(2000, phi=0.1, seed=3)
    execution = ExecutionParams(fee_bps=2.0, slippage_bps=1.0, borrow_bps_annual=50.0, allow_short=True,
                                bars_per_year=252.0)
    perms = np.vstack([np.random.default_rng(5).permutation(len(frame) - 1) for _ in range(4)]).astype(np.int32)
    expected = list(pmod._Permuter(frame).null(perms, pmod.prepare_strategy(strategy, {}), execution,
                                               pmod.statistic_fn("sharpe", 252.0)))
    np.savez(tmp_path / "job.npz", perms=perms, **pmod.frame_columns(frame))
    out = subprocess.run([sys.executable, "-c", _PANDAS_FREE_WORKER, str(tmp_path / "job.npz"), strategy],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == expected
