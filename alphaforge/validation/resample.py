"""The bootstrap's trial sums of one table chunk: the compiled kernel, or its numpy reference.

:func:`chunk_sums` adds, per trial, the sequential sum of the table rows at the trial's offsets to ``out``
(the order of "Sums" in :mod:`alphaforge.validation.bootstrap`). It runs the C kernel
``alphaforge.validation._resample`` (built by setup.py, optional) when it is importable, else
:func:`chunk_sums_numpy`; the two are bit-identical (tests/test_resample.py), so a result never depends on
whether the kernel was built — only its speed does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

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


def _kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None:
    # by name: a compiled leaf module (no imports of its own); ``from alphaforge.validation import`` would
    # read as an import of the package, whose __init__ imports this module's user
    try:
        module = importlib.import_module("alphaforge.validation._resample")
    except ImportError:
        return None
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] = module.chunk_sums
    return fn


_COMPILED = _kernel()
#: Whether the compiled kernel is in use (else the numpy reference runs: same numbers, slower).
COMPILED = _COMPILED is not None


def chunk_sums(table: np.ndarray, offsets: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """:func:`chunk_sums_numpy`'s result, by the compiled kernel when it was built (releases the GIL)."""
    if _COMPILED is None:
        chunk_sums_numpy(table, offsets, counts, out)
    else:
        _COMPILED(table, offsets, counts, out)
