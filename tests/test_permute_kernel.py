"""The compiled price-rebuild kernel (alphaforge/validation/_permute.c) against the numpy reference, bit for bit.

The permutation null distribution is defined by numpy's take / sequential cumsum / add; the kernel must give the
same log prices (and so the same float32 prices after numpy's exp) for any offsets, base and permutation, with
int64 indices (the serial path) and int32 ones (what the parent sends to worker processes).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.validation import permutation as pmod


@pytest.fixture(scope="module")
def kernel() -> None:
    if pmod._permute is None:
        assert os.environ.get("CI") != "true"
        pytest.skip("the compiled kernel is not built; tests/test_ledger_kernel.py says why")


def numpy_reference(base: float, offsets: np.ndarray, perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rebuild as first written (take, cumsum, + base; take + previous log close), for open/high/low."""
    b, m = perms.shape
    log_close = np.empty((b, m + 1))
    log_close[:, 0] = base
    np.take(offsets[3], perms, out=log_close[:, 1:])
    np.cumsum(log_close[:, 1:], axis=1, out=log_close[:, 1:])
    log_close[:, 1:] += base
    others = np.empty((b, 3, m))
    for j in range(3):
        work = np.take(offsets[j], perms)
        np.add(work, log_close[:, :-1], out=work)
        others[:, j] = work
    return log_close, others


finite = st.floats(-1.0, 1.0, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 0.1, 1e-17])


@settings(max_examples=300, deadline=None)
@given(m=st.integers(0, 80), batch=st.integers(1, 3), base=finite, seed=st.integers(0, 2**32 - 1),
       index=st.sampled_from([np.int64, np.int32]), others=st.sampled_from([(), (0,), (0, 1, 2), (2, 0)]),
       data=st.data())
def test_kernel_is_the_numpy_rebuild_bit_for_bit(kernel: None, m: int, batch: int, base: float, seed: int,
                                                  index: type, others: tuple[int, ...], data: st.DataObject) -> None:
    offsets = np.asarray([data.draw(st.lists(finite, min_size=m, max_size=m)) for _ in range(4)],
                         dtype=np.float64).reshape(4, m)
    rng = np.random.default_rng(seed)
    perms = np.vstack([rng.permutation(m) for _ in range(batch)]).astype(index).reshape(batch, m)
    expected_close, expected_others = numpy_reference(base, offsets, perms)
    table = pmod._offset_table(tuple(np.ascontiguousarray(c) for c in offsets), others)
    for kernel_on in (True, False):  # the compiled kernel, then the numpy fallback of _log_prices
        log_close = np.full((batch, m + 1), np.nan)
        got = np.full((batch, len(others), m), np.nan)
        with pytest.MonkeyPatch.context() as mp:
            if not kernel_on:
                mp.setattr(pmod, "_permute", None)
            pmod._log_prices(base, table, perms, log_close, got)
        np.testing.assert_array_equal(log_close.view(np.int64), expected_close.view(np.int64))
        np.testing.assert_array_equal(got.view(np.int64), expected_others[:, list(others)].view(np.int64))


def test_kernel_checks_its_arguments(kernel: None) -> None:
    assert pmod._permute is not None
    table, close, others = np.zeros((3, 2)), np.empty(4), np.empty((1, 3))
    with pytest.raises(IndexError):
        pmod._permute.rebuild(table, np.array([0, 3, 1]), 0.0, close, others)
    with pytest.raises(ValueError):
        pmod._permute.rebuild(table, np.array([0, 2, 1]), 0.0, np.empty(3), others)
    with pytest.raises(ValueError):
        pmod._permute.rebuild(table, np.array([0, 2, 1]), 0.0, close, np.empty((2, 3)))
    with pytest.raises(TypeError):
        pmod._permute.rebuild(table, np.array([0.0, 2.0, 1.0]), 0.0, close, others)
    with pytest.raises(TypeError):
        pmod._permute.rebuild(table.astype(np.float32), np.array([0, 2, 1]), 0.0, close, others)
    table = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    pmod._permute.rebuild(table, np.array([0, 2, 1], dtype=np.int32), 0.5, close, others)
    assert close.tolist() == [0.5, 1.5, 4.5, 6.5] and others.tolist() == [[10.5, 31.5, 24.5]]


@settings(max_examples=60, deadline=None)
@given(n_bars=st.integers(2, 60), chunk=st.integers(1, 70), batch=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       index=st.sampled_from([np.int64, np.int32]),
       names=st.sampled_from([frozenset({"close"}), frozenset({"high", "low", "close"}), frozenset({"low"})]))
def test_chunked_arrays_are_the_numpy_arrays_bit_for_bit(kernel: None, n_bars: int, chunk: int, batch: int,
                                                         seed: int, index: type, names: frozenset[str]) -> None:
    """The compiled path of ``_Permuter.arrays`` rebuilds ``_CHUNK_BARS`` bars at a time, carrying the running
    close sum: any chunk size gives the numpy path's widened prices (and bar 0 as given) bit for bit."""
    from alphaforge.validation.synthetic import ohlcv_frame

    frame = ohlcv_frame(n_bars, phi=0.05, seed=seed % 1000, mu=1e-4)
    permuter = pmod._Permuter(frame)
    rng = np.random.default_rng(seed)
    perms = np.vstack([rng.permutation(permuter.m) for _ in range(batch)]).astype(index)

    def collect() -> list[dict[str, np.ndarray]]:
        return [{k: v.copy() for k, v in out.items()} for out in permuter.arrays(perms, names, volume=True)]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pmod, "_CHUNK_BARS", chunk)
        compiled = collect()
        mp.setattr(pmod, "_permute", None)
        reference = collect()
    assert len(compiled) == len(reference) == batch
    for got, want in zip(compiled, reference, strict=True):
        assert sorted(got) == sorted(want)
        for col in want:
            assert got[col].dtype in (np.float32, want[col].dtype), col  # high / low: float32, the same values
            np.testing.assert_array_equal(got[col].astype(want[col].dtype).view(np.int64), want[col].view(np.int64),
                                          err_msg=col)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 5000), seed=st.integers(0, 2**63), held=st.none() | st.integers(0, 2**32 - 1),
       repeats=st.integers(1, 3))
def test_kernel_draws_numpys_permutation_and_leaves_its_state(kernel: None, m: int, seed: int, held: int | None,
                                                               repeats: int) -> None:
    """``draw_permutation`` = ``Generator.permutation`` value for value, and the generator's whole state after
    it (PCG64's 128-bit state and the 32-bit half it holds for the next 32-bit draw) is numpy's, so any draw
    that follows is the same too; also when the generator starts holding a half."""
    ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    if held is not None:
        for rng in (ours, theirs):
            state = rng.bit_generator.state
            state["has_uint32"], state["uinteger"] = 1, held
            rng.bit_generator.state = state
    for _ in range(repeats):
        got = pmod.draw_permutation(ours, m)
        assert got.dtype == np.int32 and np.array_equal(got, theirs.permutation(m))
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert ours.random() == theirs.random()


def test_draw_permutation_falls_back_to_numpy_for_another_generator(kernel: None) -> None:
    ours, theirs = np.random.Generator(np.random.MT19937(3)), np.random.Generator(np.random.MT19937(3))
    assert np.array_equal(pmod.draw_permutation(ours, 1000), theirs.permutation(1000))
    with pytest.raises(TypeError, match="out must be"):
        pmod._permute.permutation(0, 0, 0, 1, 0, 0, np.empty(10, dtype=np.float64))
