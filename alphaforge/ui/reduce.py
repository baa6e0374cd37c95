"""Reduce a long curve to a few thousand points for a chart, keeping every extreme (min/max per pixel bucket).

The index range ``[0, n)`` is cut into ``buckets`` contiguous buckets of (nearly) equal length; from each bucket
the reduction keeps its first and last point and, for every series given, the points of its minimum and maximum
(the "M4" rule: a line drawn through them is pixel-identical to the full line at that width). Consequences the
tests check:

* at most ``(2 + 2 k) * buckets`` points for ``k`` series (fewer when they coincide), in index order, never
  duplicated;
* every bucket's minimum and maximum of every series is kept, so the global extremes are kept too (the
  deepest drawdown, the highest equity);
* a curve of at most ``buckets`` points comes back whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default bucket count: about one per horizontal pixel of a wide chart (≤ 4,800 points for two series).
DEFAULT_BUCKETS = 800


def reduce_indices(series: Sequence[np.ndarray], buckets: int = DEFAULT_BUCKETS) -> np.ndarray:
    """The sorted, unique positions to keep from curves of equal length ``n`` (see the module docstring)."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    arrays = [np.asarray(s, dtype=np.float64) for s in series]
    if not arrays:
        raise ValueError("reduce_indices needs at least one series")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("all series must have the same length")
    if n <= buckets:
        return np.arange(n, dtype=np.int64)
    width = -(-n // buckets)  # ceil: every bucket but the last has exactly `width` points
    starts = np.arange(0, n, width, dtype=np.int64)
    keep = [starts, np.minimum(starts + width, n) - 1]
    pad = len(starts) * width - n
    for a in arrays:
        # NaN never wins a min/max: treat it as +inf for the minimum and -inf for the maximum
        lo = np.where(np.isnan(a), np.inf, a)
        hi = np.where(np.isnan(a), -np.inf, a)
        # pad the last bucket with its own last value (argmin/argmax return the first occurrence: a real point)
        lo_b = np.concatenate([lo, np.repeat(lo[-1], pad)]).reshape(-1, width)
        hi_b = np.concatenate([hi, np.repeat(hi[-1], pad)]).reshape(-1, width)
        keep.append(np.minimum(starts + lo_b.argmin(axis=1), n - 1))
        keep.append(np.minimum(starts + hi_b.argmax(axis=1), n - 1))
    return np.unique(np.concatenate(keep))
