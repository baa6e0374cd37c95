"""``pool.map`` in order with a bounded number of tasks in flight.

``Executor.map`` consumes its whole input before it yields anything: fed a generator of 200 permutation
batches of 500k indices, the parent would hold (and pickle) every batch at once, some 400 MB. Here at most
``window`` inputs are drawn ahead of the result being waited for; inputs are still drawn, and results still
come back, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(pool: Executor, fn: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """``fn(item)`` for each item on ``pool``, results in input order, at most ``window`` tasks pending."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
