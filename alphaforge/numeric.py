"""Finite numbers: the three things "make it finite" means in this package, each defined once.

* :func:`finite_number` — *is* this value a finite real number? For values whose type is not known yet
  (config values, JSON read back, database rows): the float, or ``None``. ``bool`` is never a number here
  (``True`` is an ``int`` to Python, not to a config or a CHECK).
* :func:`zero_if_not_finite` — a computed statistic that must be reportable: NaN and ±inf become ``0.0``
  (walk-forward fold statistics: a fold with no defined Sharpe scores zero).
* :func:`nan_to_zero_clipped` — a computed metric that must be storable but keep its sign and size: NaN
  becomes ``0.0``, ±inf the largest finite float64 of that sign (the performance metrics: an infinite
  profit factor stays "huge", not zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["F64_MAX", "finite_number", "nan_to_zero_clipped", "zero_if_not_finite"]

F64_MAX = float(np.finfo(np.float64).max)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (int, float or numpy scalar, not bool), else None."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def zero_if_not_finite(x: float) -> float:
    """``float(x)`` when finite, else ``0.0``."""
    return float(x) if math.isfinite(x) else 0.0


def nan_to_zero_clipped(x: float) -> float:
    """``0.0`` for NaN, else ``x`` clipped to ``[-F64_MAX, F64_MAX]``."""
    if math.isnan(x):
        return 0.0
    return float(np.clip(x, -F64_MAX, F64_MAX))
