"""alphaforge.numeric: the three meanings of "finite", one helper each."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alphaforge.numeric import F64_MAX, finite_number, nan_to_zero_clipped, zero_if_not_finite


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1.0), (2.5, 2.5), (np.float32(0.5), 0.5), (np.int64(3), 3.0), (-0.0, 0.0),
    (True, None), (np.bool_(False), None), (math.nan, None), (math.inf, None), (-math.inf, None),
    ("1", None), (None, None), ([1], None),
])
def test_finite_number_is_a_finite_real_never_a_bool(value: object, expected: float | None) -> None:
    got = finite_number(value)
    assert got == expected and (got is None or type(got) is float)


def test_the_two_ways_to_make_a_statistic_finite_differ_only_on_infinities() -> None:
    assert zero_if_not_finite(math.nan) == nan_to_zero_clipped(math.nan) == 0.0
    assert zero_if_not_finite(math.inf) == 0.0 and nan_to_zero_clipped(math.inf) == F64_MAX
    assert zero_if_not_finite(-math.inf) == 0.0 and nan_to_zero_clipped(-math.inf) == -F64_MAX
    assert zero_if_not_finite(-1.5) == nan_to_zero_clipped(-1.5) == -1.5
