"""SPA, Reality Check and StepM cross-checked against ``arch.bootstrap`` (the reference implementation,
loss convention ``loss = -return``): exactly with the same bootstrap indices, within Monte-Carlo error with
independent seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from arch.bootstrap import SPA as ArchSPA
from arch.bootstrap import RealityCheck as ArchRealityCheck
from arch.bootstrap import StationaryBootstrap
from arch.bootstrap import StepM as ArchStepM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection import (
    spa_and_stepm,
    stationary_bootstrap_indices,
    stepm,
    superior_predictive_ability,
)
from alphaforge.selection.spa import kernel_variance


def _family(seed: int, t: int = 400, n: int = 12, edge: float = 4e-4, n_edge: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A benchmark and candidates correlated with it; the first ``n_edge`` candidates have an edge, and an
    AR(1) component makes the bootstrap's block structure matter."""
    rng = np.random.default_rng(seed)
    bench = rng.normal(2e-4, 0.01, t)
    noise = rng.normal(0, 0.01, (t, n))
    for i in range(1, t):
        noise[i] += 0.3 * noise[i - 1]
    cand = 0.4 * bench[:, None] + noise + rng.normal(0, 2e-4, n)
    cand[:, :n_edge] += edge
    return bench, cand


def _arch_indices(t: int, reps: int, block: float, seed: int) -> np.ndarray:
    bs = StationaryBootstrap(block, np.zeros(t), seed=seed)
    return np.array([bs.update_indices() for _ in range(reps)])


def _arch_spa(bench: np.ndarray, cand: np.ndarray, block: float, reps: int, seed: int,
              scale: np.ndarray | None = None) -> ArchSPA:
    """arch's SPA on losses = -returns; with ``scale``, on the differentials divided by it."""
    if scale is None:
        spa = ArchSPA(-bench, -cand, block_size=block, reps=reps, seed=seed)
    else:
        spa = ArchSPA(np.zeros_like(bench), -(cand - bench[:, None]) / scale, block_size=block, reps=reps, seed=seed)
    spa.compute()
    return spa


@pytest.mark.parametrize("block", [1.0, 2.5, 7.0, 31.3])
def test_indices_are_arch_stationary_bootstrap_draws(block: float) -> None:
    ours = stationary_bootstrap_indices(257, 40, block, 99)
    np.testing.assert_array_equal(ours, _arch_indices(257, 40, block, 99))


def test_kernel_variance_matches_arch() -> None:
    bench, cand = _family(1)
    spa = _arch_spa(bench, cand, 6.0, 10, 0)
    np.testing.assert_allclose(kernel_variance(cand - bench[:, None], 6.0), spa._loss_diff_var, rtol=1e-10)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), block=st.sampled_from([1.0, 3.0, 8.5]), edge=st.sampled_from([0.0, 3e-4, 8e-4]),
       n=st.integers(1, 15))
def test_non_studentized_equals_arch_exactly(seed: int, block: float, edge: float, n: int) -> None:
    """Same seed = same indices (checked above); the indices are also passed explicitly."""
    bench, cand = _family(seed % 1000, n=n, edge=edge, n_edge=min(3, n))
    reps = 300
    ref = _arch_spa(bench, cand, block, reps, seed)
    rc = ArchRealityCheck(-bench, -cand, block_size=block, reps=reps, seed=seed)
    rc.compute()
    ref_step = ArchStepM(-bench, -cand, block_size=block, reps=reps, seed=seed)
    ref_step.compute()
    for kwargs in ({"seed": seed}, {"seed": 0, "indices": _arch_indices(len(bench), reps, block, seed)}):
        spa, step = spa_and_stepm(bench, cand, reps=reps, block_length=block, studentize=False, **kwargs)  # type: ignore[arg-type]
        assert (spa.pvalue_lower, spa.pvalue_consistent, spa.pvalue_upper) == tuple(ref.pvalues.values)
        assert spa.reality_check_pvalue == rc.pvalues["upper"]
        assert step.significant == list(ref_step.superior_models)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), block=st.sampled_from([2.0, 6.0]), edge=st.sampled_from([0.0, 4e-4, 1e-3]))
def test_studentized_equals_arch_on_studentized_differentials(seed: int, block: float, edge: float) -> None:
    """arch 8 computes the kernel variance but does not divide by it; fed the differentials divided by its own
    omega, arch's SPA and StepM are Hansen's studentized test, which must equal ours."""
    bench, cand = _family(seed % 1000, edge=edge)
    reps = 300
    omega = np.sqrt(_arch_spa(bench, cand, block, 2, 0)._loss_diff_var)
    ref = _arch_spa(bench, cand, block, reps, seed, scale=omega)
    ref_step = ArchStepM(np.zeros_like(bench), -(cand - bench[:, None]) / omega, block_size=block, reps=reps, seed=seed)
    ref_step.compute()
    spa, step = spa_and_stepm(bench, cand, reps=reps, block_length=block, seed=seed)
    assert spa.studentized
    assert (spa.pvalue_lower, spa.pvalue_consistent, spa.pvalue_upper) == tuple(ref.pvalues.values)
    assert step.significant == list(ref_step.superior_models)


def test_fixture_has_informative_pvalues() -> None:
    """The families above are not trivially 0 or 1 (else the exact checks would prove little)."""
    pvalues = []
    for seed in range(6):
        bench, cand = _family(seed, edge=3e-4)
        spa = superior_predictive_ability(bench, cand, reps=300, block_length=3.0, seed=seed, studentize=False)
        pvalues.append(spa.pvalue_consistent)
    assert 0.02 < float(np.median(pvalues)) < 0.9


@pytest.mark.parametrize("studentize", [False, True])
def test_independent_seeds_agree_within_monte_carlo_error(studentize: bool) -> None:
    bench, cand = _family(21, t=500, n=10, edge=2.5e-4)
    reps, block = 2000, 4.0
    omega = None if not studentize else np.sqrt(_arch_spa(bench, cand, block, 2, 0)._loss_diff_var)
    ref = _arch_spa(bench, cand, block, reps, 777, scale=omega).pvalues
    ours = superior_predictive_ability(bench, cand, reps=reps, block_length=block, seed=123, studentize=studentize)
    for name, value in (("lower", ours.pvalue_lower), ("consistent", ours.pvalue_consistent),
                        ("upper", ours.pvalue_upper)):
        p = float(ref[name])
        tolerance = 4.0 * np.sqrt(2.0 * max(p * (1 - p), 0.01) / reps)
        assert abs(value - p) <= tolerance, (name, value, p)


def test_pvalue_ordering_and_stepm_finds_the_edge() -> None:
    bench, cand = _family(8, t=1500, n=20, edge=1.5e-3, n_edge=4)
    spa, step = spa_and_stepm(bench, cand, block_length=5.0, seed=3)
    assert spa.pvalue_lower <= spa.pvalue_consistent <= spa.pvalue_upper
    assert spa.pvalue_consistent < 0.05 and spa.reps == 1000 and spa.n_models == 20
    assert set(step.significant) <= {0, 1, 2, 3} and len(step.significant) >= 2
    null_bench, null_cand = _family(8, t=1500, n=20, edge=0.0)
    assert stepm(null_bench, null_cand - 5e-4, block_length=5.0, seed=3).significant == []


def test_every_candidate_significant_stops_cleanly() -> None:
    bench, cand = _family(2, t=800, n=3, edge=0.01, n_edge=3)
    step = stepm(bench, cand, block_length=3.0, seed=1, reps=200)
    assert step.significant == [0, 1, 2]


def test_candidates_identical_to_the_benchmark_are_left_out() -> None:
    """Same draws (they depend on T only): with the identical candidate or without it, the same p-values; StepM
    indices still refer to the caller's columns. All identical: nothing beats the benchmark, p = 1."""
    bench, cand = _family(3, n=5, edge=2e-3, n_edge=2)
    with_copy = np.column_stack([bench, cand])
    spa, step = spa_and_stepm(bench, with_copy, block_length=3.0, seed=1, reps=300)
    alone, alone_step = spa_and_stepm(bench, cand, block_length=3.0, seed=1, reps=300)
    assert (spa.pvalue_lower, spa.pvalue_consistent, spa.pvalue_upper, spa.reality_check_pvalue) == (
        alone.pvalue_lower, alone.pvalue_consistent, alone.pvalue_upper, alone.reality_check_pvalue)
    assert spa.n_identical == 1 and spa.n_models == 6 and alone.n_identical == 0
    assert alone_step.significant and step.significant == [i + 1 for i in alone_step.significant]
    none, none_step = spa_and_stepm(bench, np.column_stack([bench, bench]), block_length=3.0, seed=1, reps=100)
    assert (none.pvalue_lower, none.pvalue_consistent, none.pvalue_upper, none.reality_check_pvalue) == (1, 1, 1, 1)
    assert none_step.significant == [] and none.n_identical == 2 and none.to_json()["n_identical_to_benchmark"] == 2


def test_json_is_plain() -> None:
    bench, cand = _family(5)
    spa, step = spa_and_stepm(bench, cand, block_length=3.0, seed=1, reps=100)
    doc = json.loads(json.dumps({"spa": spa.to_json(), "stepm": step.to_json()}, allow_nan=False))
    assert doc["spa"]["reps"] == 100 and doc["spa"]["seed"] == 1 and doc["stepm"]["alpha"] == 0.05


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"reps": 0}, ConfigInvalid, "reps"),
    ({"block_length": 0.5}, ConfigInvalid, "block_length"),
    ({"block_length": float("nan")}, ConfigInvalid, "block_length"),
    ({"seed": -1}, ConfigInvalid, "seed"),
    ({"alpha": 1.0}, ConfigInvalid, "alpha"),
    ({"indices": np.zeros((3, 5), dtype=np.int64)}, ConfigInvalid, "indices"),
    ({"indices": np.full((3, 100), 100, dtype=np.int64)}, ConfigInvalid, "indices"),
])
def test_invalid_parameters(kwargs: dict, error: type, match: str) -> None:
    bench, cand = _family(0, t=100, n=3)
    args = {"reps": 10, "block_length": 2.0, "seed": 1} | kwargs
    with pytest.raises(error, match=match):
        superior_predictive_ability(bench, cand, **args)


def test_invalid_data() -> None:
    bench, cand = _family(0, t=100, n=3)
    with pytest.raises(DataInvalid, match="rows"):
        superior_predictive_ability(bench[:-1], cand, block_length=2.0, seed=1)
    cand[5, 1] = np.inf
    with pytest.raises(DataInvalid, match="non-finite"):
        superior_predictive_ability(bench, cand, block_length=2.0, seed=1)
    with pytest.raises(ConfigInvalid):
        superior_predictive_ability(bench, cand[:, :0], block_length=2.0, seed=1)


def test_draws_do_not_depend_on_chunking() -> None:
    from alphaforge.selection import iter_stationary_bootstrap_indices

    whole = stationary_bootstrap_indices(300, 50, 4.0, 8)
    np.testing.assert_array_equal(np.concatenate(list(iter_stationary_bootstrap_indices(300, 50, 4.0, 8, chunk_reps=7))), whole)
    bench, cand = _family(4, t=300, n=5)
    a = superior_predictive_ability(bench, cand, reps=50, block_length=4.0, seed=8)
    b = superior_predictive_ability(bench, cand, reps=50, block_length=4.0, seed=0, indices=whole)
    assert (a.pvalue_lower, a.pvalue_consistent, a.pvalue_upper) == (b.pvalue_lower, b.pvalue_consistent, b.pvalue_upper)
