"""Input checks and JSON conversion shared by the selection statistics (one rule each, defined once).

* Return arrays must be float-convertible, of the stated dimension and finite: a NaN or an infinity in a
  family of trials is a data error (``DATA_INVALID``), never silently dropped.
* A statistic that is not finite (an infinite minimum track record, an undefined regression slope) is
  ``None`` in JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alphaforge.errors import DataInvalid
from alphaforge.numeric import finite_number

#: A variance within rounding of 0 (``var <= ZERO_VARIANCE_REL * mean square``, the rule of
#: :mod:`alphaforge.validation.block_length`): the Sharpe ratio of such a series is 0.
ZERO_VARIANCE_REL = 1e-14


def as_series(values: Any, name: str) -> np.ndarray:
    """``values`` as a finite one-dimensional float64 array (``DATA_INVALID`` otherwise)."""
    return _finite(values, name, 1)


def as_matrix(values: Any, name: str) -> np.ndarray:
    """``values`` as a finite two-dimensional float64 array, rows = bars, columns = trials."""
    return _finite(values, name, 2)


def _finite(values: Any, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataInvalid(f"{name} must be numeric: {exc}", field=name) from exc
    if arr.ndim != ndim:
        raise DataInvalid(f"{name} must be {ndim}-dimensional, got shape {arr.shape}", field=name)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise DataInvalid(f"{name} holds a non-finite value at index {bad}", field=name, index=bad)
    return arr


def json_float(value: float) -> float | None:
    """A finite float, or ``None`` for NaN/±inf (JSON has neither)."""
    return finite_number(value)


def json_summary(values: np.ndarray) -> dict[str, float | None]:
    """Order statistics, mean and standard deviation (ddof=0) of a non-empty sample, JSON-safe."""
    if values.size == 0:
        return {k: None for k in ("min", "q25", "median", "q75", "max", "mean", "std")}
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"min": json_float(q[0]), "q25": json_float(q[1]), "median": json_float(q[2]),
            "q75": json_float(q[3]), "max": json_float(q[4]), "mean": json_float(float(np.mean(values))),
            "std": json_float(float(np.std(values)))}


def sharpe_per_bar(returns: Any) -> np.ndarray:
    """Per-bar Sharpe ratio of each column of a ``T x N`` matrix (or of a series): ``mean / std(ddof=1)``,
    0 where the variance is within rounding of 0 (see :data:`ZERO_VARIANCE_REL`) — the project's Sharpe
    (:func:`alphaforge.metrics.sharpe`) without the ``sqrt(bars_per_year)`` factor."""
    arr = np.asarray(returns, dtype=np.float64)
    matrix = arr[:, None] if arr.ndim == 1 else arr
    n = matrix.shape[0]
    if n < 2:
        out = np.zeros(matrix.shape[1])
    else:
        mean = matrix.mean(axis=0)
        var = matrix.var(axis=0, ddof=1)
        mean_square = np.mean(matrix * matrix, axis=0)
        ok = var > ZERO_VARIANCE_REL * mean_square
        out = np.where(ok, mean / np.sqrt(np.where(ok, var, 1.0)), 0.0)
    return out if arr.ndim != 1 else out[:1]


__all__ = ["ZERO_VARIANCE_REL", "as_matrix", "as_series", "json_float", "json_summary", "sharpe_per_bar"]
