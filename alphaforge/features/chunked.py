"""Chunked execution of indicator kernels, bitwise identical to contiguous execution.

Two kinds of kernel exist and both are written so that *the contiguous path is the chunked path with one
chunk* — the same floating-point operations run on the same operands whatever the chunk size:

* :class:`WindowKernel` — output ``i`` depends only on the inputs ``i - lookback + 1 .. i``. A chunk is
  computed from its own bars plus an overlap of ``lookback - 1`` bars. Rolling sums come from
  :func:`window_moments`, which is *window-local*: every window sum is a sequential float64 sum over the
  window's own values (split at block boundaries aligned to the **absolute** bar index), so an overlapping
  chunk reproduces it exactly. There is no running cumulative sum across the whole series, hence no drift.
* :class:`RecursiveKernel` — an IIR recursion (EMA, Wilder smoothing). ``seed`` runs once on the first
  ``seed_bars`` bars; ``step`` continues the recursion from a carried state over each chunk. A chunk boundary
  only changes where the state is handed over, never the arithmetic.

Working memory is ``O(chunk_size + lookback)`` float64 values (the float32 output array aside).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alphaforge.errors import ConfigInvalid, DataInvalid

try:
    from alphaforge.features import _rolling
except ImportError:  # built optional=True (setup.py): without a compiler the numpy reference runs
    _rolling = None  # type: ignore[assignment]

F64 = np.ndarray  # float64 arrays inside kernels (alias for readability)
Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class WindowKernel:
    """``fn(arrays, origin)`` maps float64 input slices starting at absolute bar ``origin`` to float64 output.

    The first ``lookback - 1`` outputs of a slice are NaN (they would need bars before the slice).
    """

    lookback: int
    fn: Callable[[dict[str, np.ndarray], int], np.ndarray]


@dataclass(frozen=True)
class RecursiveKernel:
    """``seed(first seed_bars bars) -> (out, state)`` then ``step(state, chunk) -> (out, state)``."""

    seed_bars: int
    seed: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, Any]]
    step: Callable[[Any, dict[str, np.ndarray]], tuple[np.ndarray, Any]]


Kernel = WindowKernel | RecursiveKernel


def input_arrays(frame_or_arrays: Any, names: Sequence[str]) -> tuple[dict[str, np.ndarray], int]:
    """The named 1-D input columns (as given, not copied) and their common length; DataInvalid otherwise."""
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        try:
            column = frame_or_arrays[name]
        except (KeyError, IndexError, TypeError):
            raise DataInvalid(
                f"input column {name!r} is missing; the indicator needs columns {list(names)}",
                column=name,
            ) from None
        arr = np.asarray(column)
        if arr.ndim != 1:
            raise DataInvalid(f"input column {name!r} must be 1-D, got shape {arr.shape}", column=name)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise DataInvalid(f"input column {name!r} must be numeric, got dtype {arr.dtype}", column=name)
        arrays[name] = arr
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise DataInvalid(
            f"input columns have different lengths {({k: len(v) for k, v in arrays.items()})}",
            column=",".join(names),
        )
    return arrays, lengths.pop() if lengths else 0


def _slice64(arrays: Mapping[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[start:stop], dtype=np.float64) for k, v in arrays.items()}


def run_kernel(kernel: Kernel, arrays: Arrays, n: int, chunk_size: int) -> np.ndarray:
    """Run ``kernel`` over ``n`` bars in chunks of ``chunk_size`` outputs; float32 result of length ``n``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ConfigInvalid(f"chunk_size must be an integer >= 1, got {chunk_size!r}", field="chunk_size")
    chunk = int(chunk_size)
    out = np.empty(n, dtype=np.float32)
    if isinstance(kernel, WindowKernel):
        overlap = kernel.lookback - 1
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            lo = max(0, start - overlap)
            y = kernel.fn(_slice64(arrays, lo, stop), lo)
            out[start:stop] = y[start - lo :]
        return out
    seed_n = min(kernel.seed_bars, n)
    y, state = kernel.seed(_slice64(arrays, 0, seed_n))
    out[:seed_n] = y
    for start in range(seed_n, n, chunk):
        stop = min(n, start + chunk)
        y, state = kernel.step(state, _slice64(arrays, start, stop))
        out[start:stop] = y
    return out


# --------------------------------------------------------------------------------------------------------
# window-local rolling moments


def window_moments(
    x: np.ndarray, window: int, origin: int, second: bool, want_dev: bool = False
) -> tuple[F64 | None, F64, F64 | None]:
    """Per-bar ``(dev, s1, s2)`` of the trailing ``window`` values, window-local and O(n).

    The absolute bar axis is cut into blocks of ``window`` bars (block ``k`` = bars ``k*w .. k*w+w-1``;
    ``origin`` is the absolute index of ``x[0]``). The window ending at a bar of block ``k`` is the tail of
    block ``k-1`` plus the head of block ``k``. ``s1 = sum(x - ref)`` over the window is a sequential prefix
    sum of the head plus a sequential suffix sum (summed from the block's end) of the tail — a function of the
    window's values alone, so any chunking that sees the whole window reproduces it bit for bit, and rounding
    never accumulates beyond one window.

    With ``second``, ``s2 = sum((x - ref)**2)`` too, where ``ref`` is the value of block ``k``'s first bar:
    it lies inside every window ending in block ``k``, so ``s2 - s1**2 / w`` stays well conditioned. Without
    ``second`` the sums are unshifted. ``dev = x - ref`` per bar when ``want_dev`` (with ``second``), else None.
    Windows reaching before ``x[0]`` or containing NaN give NaN. The compiled kernel
    (``alphaforge/features/_rolling.c``) runs the same sums when built; the numpy code below is its reference.
    """
    w = window
    n = x.size
    phase = origin % w
    if _rolling is not None:  # the compiled kernel: the same operations in one pass, bit-identical
        s1 = np.empty(n)
        s2 = np.empty(n) if second else None
        dev = np.empty(n) if second and want_dev else None
        _rolling.window_sums(np.ascontiguousarray(x, dtype=np.float64), w, phase, s1, s2, dev)
        return dev, s1, s2
    nb = (phase + n + w - 1) // w
    buf = np.empty(nb * w)
    buf[:phase] = np.nan
    buf[phase : phase + n] = x
    buf[phase + n :] = np.nan
    blocks = buf.reshape(nb, w)
    # head[k, r] holds bars k*w .. k*w+r of block k; tail[k, r] bars r+1 .. w-1 of block k-1, written reversed
    # so that its cumulative sum runs from the block's end (0 for r = w-1; NaN in block 0: before the data)
    head = np.empty((nb, w))
    tail = np.empty((nb, w))
    tail[0, : w - 1] = np.nan
    tail[:, w - 1] = 0.0

    def reversed_tail(t: F64) -> F64:
        return t[1:, w - 2 :: -1] if w > 1 else t[1:, :0]

    def finish(h: F64, t: F64, source: F64 | None = None) -> F64:  # prefix sums + suffix sums, into h
        np.cumsum(h if source is None else source, axis=1, out=h)
        tv = reversed_tail(t)
        np.cumsum(tv if source is None else source[:-1, :0:-1], axis=1, out=tv)
        h += t
        return h.reshape(-1)[phase : phase + n]

    if not second:
        return None, finish(head, tail, blocks), None
    ref = blocks[:, 0].copy()
    np.subtract(blocks, ref[:, None], out=head)
    np.subtract(blocks[:-1, :0:-1], ref[1:, None], out=reversed_tail(tail))
    head2, tail2 = np.square(head), np.square(tail)  # the 0 column stays 0, the NaN row NaN
    dev = head.reshape(-1)[phase : phase + n].copy() if want_dev else None
    s1 = finish(head, tail)
    s2 = finish(head2, tail2)
    return dev, s1, s2


def rolling_mean(x: np.ndarray, window: int, origin: int) -> F64:
    """Window-local rolling mean of ``x`` (see :func:`window_moments`)."""
    _, s1, _ = window_moments(x, window, origin, second=False)
    s1 /= window
    return s1


def rolling_std(x: np.ndarray, window: int, origin: int, want_dev: bool = False) -> tuple[F64 | None, F64, F64]:
    """Window-local ``(x - ref or None, mean - ref, sample std (ddof=1))`` of ``x``.

    ``ref`` is a value inside each window (see :func:`window_moments`); ``x - mean = (x - ref) - (mean - ref)``.
    """
    dev, s1, s2 = window_moments(x, window, origin, second=True, want_dev=want_dev)
    assert s2 is not None
    offset = s1 / window
    s1 *= offset  # s1**2 / w
    s2 -= s1  # var * (w - 1)
    s2 /= window - 1
    np.maximum(s2, 0.0, out=s2)  # rounding can leave a tiny negative; NaN propagates
    np.sqrt(s2, out=s2)
    return dev, offset, s2


def rolling_zscore(x: np.ndarray, window: int, origin: int) -> F64:
    """Window-local ``(x - mean) / std`` (ddof=1) of the trailing ``window`` values; NaN where std is 0.

    The compiled kernel, when built, runs :func:`rolling_std`'s steps and the ones below per bar in one pass
    (no per-chunk temporaries): bit-identical (tests/test_rolling_kernel.py)."""
    if _rolling is not None:
        z = np.empty(x.size)
        _rolling.zscore(np.ascontiguousarray(x, dtype=np.float64), window, origin % window, z)
        return z
    dev, offset, std = rolling_std(x, window, origin, want_dev=True)
    assert dev is not None
    dev -= offset  # x - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        dev /= std
    dev[std == 0.0] = np.nan
    return dev


# --------------------------------------------------------------------------------------------------------
# first-order recursions


def smooth(prev: float | None, x: np.ndarray, alpha: float) -> F64:
    """``y[t] = ((1 - alpha) * y[t-1] + alpha * x[t]) / 1`` from ``y[-1] = prev`` (pandas ``ewm(adjust=False)``).

    The recursion is run by pandas' compiled ewm kernel over ``[prev, *x]`` (over ``x`` when ``prev`` is None:
    then ``y[0] = x[0]``); its arithmetic at step ``t`` depends only on ``y[t-1]`` and ``x[t]``, so carrying
    ``y[-1]`` across chunks is exact. NaN handling is the caller's. The result may be read-only.
    """
    if prev is None:
        return _ewm(x, alpha)
    buf = np.empty(x.size + 1)
    buf[0] = prev
    buf[1:] = x
    return smooth_filled(buf, alpha)


def smooth_filled(buf: np.ndarray, alpha: float) -> F64:
    """:func:`smooth` over ``buf[1:]`` from ``y[-1] = buf[0]`` (for callers that fill the buffer in place)."""
    return _ewm(buf, alpha)[1:]


def ewm_weights(alpha: float) -> tuple[float, float, bool]:
    """pandas' weights of ``ewm(alpha, adjust=False)``: ``(old_wt_factor, new_wt, com == 1)`` (the compiled
    recursions' arguments)."""
    com = float((1 - alpha) / alpha)  # pandas: alpha -> center of mass -> 1 / (1 + com)
    new_wt = 1.0 / (1.0 + com)
    return 1.0 - new_wt, new_wt, com == 1


def _ewm(x: np.ndarray, alpha: float) -> F64:
    if _rolling is not None:  # pandas' recursion compiled, with pandas' own weights (bit-identical)
        out = np.empty(x.size)
        _rolling.ewm(np.ascontiguousarray(x, dtype=np.float64), *ewm_weights(alpha), out)
        return out
    import pandas as pd  # here, not at the top: a permutation worker does not import pandas (issue #13)

    return pd.Series(x, copy=False).ewm(alpha=alpha, adjust=False).mean().to_numpy(dtype=np.float64)


def first_nan(*arrays: np.ndarray) -> int | None:
    """Index of the first position where any of ``arrays`` is NaN, or None."""
    if arrays[0].size == 0 or not any(np.isnan(np.min(a)) for a in arrays):  # min propagates NaN: fast path
        return None
    bad = np.isnan(arrays[0])
    for arr in arrays[1:]:
        bad |= np.isnan(arr)
    return int(np.argmax(bad))
