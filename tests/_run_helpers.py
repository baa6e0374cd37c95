"""Runs built for the tests: configs whose run_hash values collide on a chosen prefix."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

from alphaforge.config import RunConfig, run_hash_of


def colliding_configs(make: Callable[[str], RunConfig], data_hash: str, shared: int = 4) -> tuple[RunConfig, RunConfig]:
    """Two configs from ``make(symbol)`` whose run_hash values (on ``data_hash``) share ``shared`` leading hex
    characters, found by trying symbols S0, S1, … in order (the birthday bound: a few hundred for 4 chars).

    Deterministic: the same ``make`` and ``data_hash`` always give the same pair, so an ambiguous prefix is a
    fact of the test, not luck.
    """
    seen: dict[str, RunConfig] = {}
    for i in itertools.count():
        config = make(f"S{i}")
        key = run_hash_of(config, data_hash)[:shared]
        if key in seen:
            return seen[key], config
        seen[key] = config
    raise AssertionError("unreachable")


def shared_prefix(*run_hashes: str) -> str:
    """The longest prefix common to all ``run_hashes``."""
    return os.path.commonprefix(list(run_hashes))
