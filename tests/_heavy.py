"""The size of a ``heavy`` test: the full size locally, a fraction of it where ALPHAFORGE_HEAVY_SCALE says so.

A test is marked ``heavy`` exactly when its size comes from :func:`heavy_size` (tests/test_heavy_marker.py
checks both directions), so the marker always means "CI runs this at a reduced size": ``.ci/run`` sets
``ALPHAFORGE_HEAVY_SCALE=0.3``; a plain local ``pytest`` runs the full size.
"""

from __future__ import annotations

import os

SCALE_VARIABLE = "ALPHAFORGE_HEAVY_SCALE"


def heavy_scale() -> float:
    """The fraction of the full size to run, from ALPHAFORGE_HEAVY_SCALE (unset: 1.0); must be in (0, 1]."""
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} is not a number in (0, 1]") from None
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} is not a number in (0, 1]")
    return scale


def heavy_size(full: int, *, minimum: int = 1) -> int:
    """``full`` scaled by :func:`heavy_scale`, never below ``minimum``."""
    return max(minimum, int(full * heavy_scale()))
