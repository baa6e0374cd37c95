"""The bootstrap's trial sums of one table chunk: the compiled kernel, or its numpy reference.

:func:`chunk_sums` adds, per trial, the sequential sum of the table rows at the trial's offsets to ``out``
(the order of "Sums" in :mod:`alphaforge.validation.bootstrap`). It runs the C kernel
``alphaforge.validation._resample`` (built by setup.py, optional) when it is importable, else
:func:`chunk_sums_numpy`; the two are bit-identical (tests/test_resample.py), so a result never depends on
whether the kernel was built — only its speed does. :func:`raw_words` is ``random_raw`` (the bootstrap's
15-bit starts), by the same kernel for numpy's PCG64: the same words.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

#: Columns of a block-sum table row: ``sum x``, ``sum x^2``, ``sum log1p r`` (``-inf`` holding a ruin bar).
COLS = 3


def chunk_sums_numpy(table: np.ndarray, offsets: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """The reference: ``out[i] += sequential sum of table[offsets of trial i]`` (from +0.0, in offset order).

    ``table`` (m, 3) float64; ``offsets`` uint16 row numbers, the trials' segments one after the other;
    ``counts`` (trials,) their lengths; ``out`` (trials, 3) float64, added to. Per column the segments are
    laid out as the rows of a (trials, longest) grid padded with a zero row and summed along by
    ``np.cumsum`` (an accumulation: always sequential; about 10x the kernel's time). ``cumsum`` starts at the first row where the kernel
    starts at ``0.0 + first row``: the two differ at most in the sign of a zero sum, which ``+ 0.0`` clears
    (``-0.0 + 0.0 == +0.0``); the zero padding after a segment changes no other bit.
    """
    counts = np.asarray(counts, dtype=np.int64)
    trials, rows = counts.shape[0], table.shape[0]
    if int(counts.sum()) != offsets.shape[0] or (counts < 0).any():
        raise ValueError(f"counts must be >= 0 and sum to len(offsets) = {offsets.shape[0]}")
    if offsets.shape[0] and int(offsets.max()) >= rows:
        raise IndexError(f"offset {int(offsets.max())} outside the table's {rows} rows")
    width = int(counts.max()) if trials else 0
    if width == 0:
        out += 0.0  # every segment is empty: the kernel adds its +0.0 sums
        return
    grid = np.full((trials, width), rows, dtype=np.intp)  # row `rows` is the zero padding row
    start = 0
    for i, count in enumerate(counts.tolist()):
        grid[i, :count] = offsets[start : start + count]
        start += count
    columns = np.concatenate([table.T, np.zeros((COLS, 1))], axis=1)
    for c in range(COLS):
        out[:, c] += np.cumsum(np.take(columns[c], grid), axis=1)[:, -1] + 0.0


def _kernel() -> ModuleType | None:
    # by name: a compiled leaf module (no imports of its own); ``from alphaforge.validation import`` would
    # read as an import of the package, whose __init__ imports this module's user
    try:
        return importlib.import_module("alphaforge.validation._resample")
    except ImportError:
        return None


_KERNEL = _kernel()
#: Whether the compiled kernel is in use (else the numpy reference runs: same numbers, slower).
COMPILED = _KERNEL is not None
_WORD = (1 << 64) - 1


def chunk_sums(table: np.ndarray, offsets: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """:func:`chunk_sums_numpy`'s result, by the compiled kernel when it was built (releases the GIL)."""
    if _KERNEL is None:
        chunk_sums_numpy(table, offsets, counts, out)
    else:
        _KERNEL.chunk_sums(table, offsets, counts, out)


def raw_words(rng: np.random.Generator, count: int) -> np.ndarray:
    """``rng.bit_generator.random_raw(count)`` (uint64), and the generator left where that call leaves it.

    For a :class:`numpy.random.PCG64` the compiled kernel steps the same stream itself (the same words, about
    twice as fast, GIL released) and sets the generator's state after them; any other generator, or no
    kernel, calls ``random_raw``.
    """
    bg = rng.bit_generator
    fill = getattr(_KERNEL, "pcg64_raw", None)
    if fill is None or type(bg) is not np.random.PCG64:
        return np.asarray(bg.random_raw(count), dtype=np.uint64)
    state = bg.state
    out = np.empty(count, dtype=np.uint64)
    hi, lo = fill(*pcg64_words(state), out)
    state["state"]["state"] = (hi << 64) | lo
    bg.state = state  # has_uint32 / uinteger are kept: random_raw does not touch them either
    return out


def pcg64_words(state: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """A :class:`numpy.random.PCG64` ``state`` dict's 128-bit state and increment as the compiled kernels take
    them: ``(state_hi, state_lo, inc_hi, inc_lo)``, 64-bit words (a kernel hands the new state back as
    ``(hi, lo)``: ``state["state"]["state"] = (hi << 64) | lo``)."""
    now, inc = int(state["state"]["state"]), int(state["state"]["inc"])
    return now >> 64, now & _WORD, inc >> 64, inc & _WORD
