"""validation.ordered_map: results in input order, and never more than ``window`` inputs drawn ahead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from alphaforge.validation.ordered_map import ordered_map


def test_results_come_back_in_input_order() -> None:
    with ThreadPoolExecutor(4) as pool:
        assert list(ordered_map(pool, lambda x: x * x, range(50), window=3)) == [x * x for x in range(50)]


def test_at_most_window_inputs_are_drawn_before_the_first_result() -> None:
    drawn: list[int] = []
    release = threading.Event()

    def items() -> Iterator[int]:
        for i in range(100):
            drawn.append(i)
            yield i

    def slow(x: int) -> int:
        release.wait(5)
        return x

    with ThreadPoolExecutor(2) as pool:
        results = ordered_map(pool, slow, items(), window=4)
        timer = threading.Timer(0.2, release.set)
        timer.start()
        first = next(results)
        assert first == 0
        assert len(drawn) == 4  # Executor.map would have drained all 100 before yielding
        assert list(results) == list(range(1, 100))
        timer.cancel()


def test_a_window_below_one_is_refused() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="window"):
        list(ordered_map(pool, abs, [1], window=0))
