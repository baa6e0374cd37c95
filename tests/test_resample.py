"""The bootstrap's trial-sum kernel (alphaforge/validation/_resample.c) against its numpy reference, bit for bit.

:func:`alphaforge.validation.resample.chunk_sums` must give the same bits whether the C kernel was built or not
(a stored digest never depends on the build): per trial and column, the rows at the trial's offsets summed
sequentially from +0.0 in offset order, then added to ``out``. These tests hold the kernel to the numpy
reference on random tables (ruin rows of ``-inf``, signed zeros, magnitudes far apart so that any other
order would round differently), hold the reference to a plain Python loop (the documented order), and run
whole bootstrap distributions both ways.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphaforge.validation import bootstrap as bmod
from alphaforge.validation import resample
from alphaforge.validation.bootstrap import BlockSums, bootstrap_distribution
from alphaforge.validation.synthetic import ar1_returns

IN_CI = os.environ.get("CI") == "true"
BPY = 252.0
KERNEL = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALUES = (0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, -1e16, 1e16, 0.1, 1.0 / 3.0, -np.inf)


def test_the_compiled_kernel_is_built() -> None:
    """CI must run the compiled kernel: a build that silently fell back to numpy fails here."""
    if not resample.COMPILED:
        assert not IN_CI, "alphaforge.validation._resample is not importable: the C extension was not built"
        pytest.skip("alphaforge.validation._resample was not built here (no compiler); the numpy reference runs")
    from alphaforge.validation import _resample

    assert resample._KERNEL is _resample
    assert callable(_resample.chunk_sums) and callable(_resample.pcg64_raw)


@pytest.fixture(scope="module")
def compiled() -> None:
    if not resample.COMPILED:
        assert not IN_CI
        pytest.skip("the compiled kernel is not built; test_the_compiled_kernel_is_built says why")


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


@st.composite
def chunks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(table, offsets, counts, out)``: up to 11 trials (4-trial groups and a remainder), empty segments."""
    rows = draw(st.integers(1, 40))
    cell = st.sampled_from(VALUES) | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    table = np.array(draw(st.lists(st.tuples(cell, cell, cell), min_size=rows, max_size=rows)), dtype=np.float64)
    table[:, :2] = np.where(np.isinf(table[:, :2]), 7.0, table[:, :2])  # only the log column holds -inf
    counts = np.array(draw(st.lists(st.integers(0, 30), min_size=0, max_size=11)), dtype=np.int64)
    offsets = np.array(draw(st.lists(st.integers(0, rows - 1), min_size=int(counts.sum()),
                                     max_size=int(counts.sum()))), dtype=np.uint16)
    out = np.array(draw(st.lists(st.tuples(cell, cell, cell), min_size=len(counts), max_size=len(counts))),
                   dtype=np.float64).reshape(len(counts), 3)
    out[:, :2] = np.where(np.isinf(out[:, :2]), 0.0, out[:, :2])
    return table, offsets, counts, out


@KERNEL
@given(chunks())
def test_kernel_is_bit_identical_to_the_numpy_reference(compiled: None, case: tuple[np.ndarray, ...]) -> None:
    table, offsets, counts, out = case
    ours, ref = out.copy(), out.copy()
    resample.chunk_sums(table, offsets, counts, ours)
    resample.chunk_sums_numpy(table, offsets, counts, ref)
    np.testing.assert_array_equal(bits(ours), bits(ref))


@settings(max_examples=100, deadline=None)
@given(chunks())
def test_reference_is_the_sequential_sum_in_offset_order(case: tuple[np.ndarray, ...]) -> None:
    """The documented order, written out: per trial and column ``s = 0.0; s += row`` in offset order; ``out += s``."""
    table, offsets, counts, out = case
    expected = out.copy()
    start = 0
    for i, count in enumerate(counts.tolist()):
        for c in range(3):
            s = 0.0
            for k in offsets[start : start + count].tolist():
                s += float(table[k, c])
            expected[i, c] += s
        start += count
    ref = out.copy()
    resample.chunk_sums_numpy(table, offsets, counts, ref)
    np.testing.assert_array_equal(bits(ref), bits(expected))


@pytest.mark.parametrize("fn", [resample.chunk_sums, resample.chunk_sums_numpy], ids=["dispatch", "numpy"])
def test_signed_zeros_follow_the_sequential_sum_from_plus_zero(fn: object) -> None:
    """``0.0 + -0.0 == +0.0``: a segment of negative zeros, or an empty one, turns an ``out`` of -0.0 into +0.0."""
    chunk_sums = fn
    assert callable(chunk_sums)
    table = np.array([[-0.0, -0.0, -0.0], [-0.0, 1.0, -np.inf]])
    out = np.full((3, 3), -0.0)
    chunk_sums(table, np.array([0, 0, 1], dtype=np.uint16), np.array([2, 0, 1]), out)
    assert bits(out).tolist() == bits(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, -np.inf]])).tolist()
    empty = np.full((2, 3), -0.0)
    chunk_sums(table, np.zeros(0, dtype=np.uint16), np.array([0, 0]), empty)
    assert bits(empty).tolist() == bits(np.zeros((2, 3))).tolist()


def test_order_matters_for_these_values() -> None:
    """The bit comparisons can fail: the same rows in another order round differently."""
    table = np.array([[1e16, 0.0, 0.0], [1.0, 0.0, 0.0], [-1e16, 0.0, 0.0]])
    fwd, rev = np.zeros((1, 3)), np.zeros((1, 3))
    resample.chunk_sums(table, np.array([0, 1, 1, 2], dtype=np.uint16), np.array([4]), fwd)
    resample.chunk_sums(table, np.array([1, 1, 0, 2], dtype=np.uint16), np.array([4]), rev)
    assert fwd[0, 0] != rev[0, 0]


@pytest.mark.parametrize("fn", [resample.chunk_sums, resample.chunk_sums_numpy], ids=["dispatch", "numpy"])
def test_bad_arguments_raise(fn: object) -> None:
    chunk_sums = fn
    assert callable(chunk_sums)
    table, out = np.zeros((4, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="counts"):
        chunk_sums(table, np.zeros(3, dtype=np.uint16), np.array([1, 1]), out)
    with pytest.raises(IndexError, match="outside"):
        chunk_sums(table, np.array([0, 4], dtype=np.uint16), np.array([1, 1]), out)
    assert not out.any()  # nothing was added before the arguments were checked
    for bad in (3, 16, 19):  # inside a block of eight offsets (the kernel's vector check) and in the tail
        offsets = np.full(20, 3, dtype=np.uint16)
        offsets[bad] = 4
        with pytest.raises(IndexError, match="offset 4 outside the table's 4 rows"):
            chunk_sums(table, offsets, np.array([10, 10]), out)
    assert not out.any()


def test_kernel_checks_buffer_types(compiled: None) -> None:
    from alphaforge.validation import _resample

    table, out = np.zeros((4, 3)), np.zeros((1, 3))
    with pytest.raises(TypeError, match="offsets"):
        _resample.chunk_sums(table, np.zeros(1, dtype=np.int64), np.array([1]), out)
    with pytest.raises(TypeError, match="table"):
        _resample.chunk_sums(table.astype(np.float32), np.zeros(1, dtype=np.uint16), np.array([1]), out)
    with pytest.raises(ValueError, match=r"\(m, 3\)"):
        _resample.chunk_sums(np.zeros((4, 4)), np.zeros(1, dtype=np.uint16), np.array([1]), out)
    with pytest.raises(ValueError, match="C-contiguous"):
        _resample.chunk_sums(table, np.zeros(1, dtype=np.uint16), np.array([1]), out[:, ::2])


@pytest.mark.parametrize(("n", "block"), [(70_001, 1), (70_001, 9), (65_536, 1), (997, 7)])
def test_distribution_does_not_depend_on_the_build(compiled: None, n: int, block: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole distributions (full and short table chunks, a partial last block, a ruin bar): kernel == numpy
    (the trial sums and the raw words)."""
    r = ar1_returns(n, 0.3, seed=5, mu=2e-4)
    r[n // 2] = -1.0
    kernel = bootstrap_distribution(r, block_length=block, n=2 * bmod.CHUNK_TRIALS + 3, seed=11,
                                    bars_per_year=BPY, workers=1)
    monkeypatch.setattr(resample, "_KERNEL", None)  # numpy: chunk_sums_numpy and random_raw
    reference = bootstrap_distribution(r, block_length=block, n=2 * bmod.CHUNK_TRIALS + 3, seed=11,
                                       bars_per_year=BPY, workers=2)
    for ours, theirs in zip(kernel, reference, strict=True):
        np.testing.assert_array_equal(bits(ours), bits(theirs))


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_raw_words_are_random_raw_and_leave_the_same_state(compiled: None, seed: int) -> None:
    """The kernel's PCG64 words are ``random_raw``'s, bit for bit, and the generator ends in the same state
    (a buffered 32-bit half included): every later draw is the same."""
    for count in (0, 1, 3, 4, 5, 8, 9, 1000, 125_001):
        ours, ref = np.random.Generator(np.random.PCG64(seed)), np.random.Generator(np.random.PCG64(seed))
        for rng in (ours, ref):
            rng.integers(0, 5, 3)  # 32-bit draws: leaves a buffered uint32 half
        assert ours.bit_generator.state == ref.bit_generator.state
        words = resample.raw_words(ours, count)
        assert words.dtype == np.uint64 and words.shape == (count,)
        np.testing.assert_array_equal(words, ref.bit_generator.random_raw(count))
        assert ours.bit_generator.state == ref.bit_generator.state
        np.testing.assert_array_equal(ours.integers(0, 7, 11), ref.integers(0, 7, 11))
        np.testing.assert_array_equal(ours.random(5), ref.random(5))


def test_raw_words_of_another_generator_are_random_raw() -> None:
    ours, ref = np.random.Generator(np.random.PCG64DXSM(4)), np.random.Generator(np.random.PCG64DXSM(4))
    np.testing.assert_array_equal(resample.raw_words(ours, 37), ref.bit_generator.random_raw(37))
    assert ours.bit_generator.state == ref.bit_generator.state


def test_run_sums_chunk_by_chunk_then_the_last_block() -> None:
    """run() == the documented order rebuilt from draw_starts(): per table chunk a sequential sum from +0.0
    added to the trial's total, in chunk order; then the partial last block's row."""
    n, block = 70_001, 3
    sums = BlockSums(ar1_returns(n, 0.2, seed=2, mu=1e-4), block, BPY)
    starts = sums.draw_starts(bmod.chunk_rng(3, 1), 5)
    expected = np.zeros((5, 3))
    for i in range(5):
        full = starts[i, : sums.full_blocks]
        for j in range(sums.chunks):
            part = np.zeros(3)
            for k in full[full // bmod.TABLE_CHUNK == j].tolist():
                part = part + sums.full[k]
            expected[i] += part
        expected[i] += sums.tail[starts[i, -1]]
    got = sums._statistics(expected)
    run = sums.run(bmod.chunk_rng(3, 1), 5)
    for ours, theirs in zip(run, got, strict=True):
        np.testing.assert_array_equal(bits(ours), bits(theirs))
