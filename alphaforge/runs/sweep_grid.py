"""Sweep grids: ``dotted.key=v1,v2,…`` axes over a base config, expanded to one raw config per point."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from alphaforge.config import MAX_GRID_POINTS, apply_overrides
from alphaforge.errors import ConfigInvalid

__all__ = ["grid_configs", "parse_grid", "point_params"]


def _split_values(text: str) -> list[str]:
    """Split ``5,10,[1, 2],"a,b"`` on the commas that are not inside brackets, braces or quotes."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(grid: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["a.b=1,2", …]`` → ``[("a.b", ["1", "2"]), …]`` (value texts, parsed later like ``--set``)."""
    axes: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for axis in grid:
        key, sep, text = axis.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or not all(p.strip() for p in parts):
            raise ConfigInvalid(f"--grid {axis!r}: expected dotted.key=v1,v2,…, e.g. strategy.params.fast=5,10,20",
                                field=key or "grid")
        values = _split_values(text)
        if not text.strip() or any(not v for v in values):
            raise ConfigInvalid(f"--grid {axis!r}: empty value in the list; give comma-separated values",
                                field=key)
        if key in seen:
            raise ConfigInvalid(f"--grid {axis!r}: {key} is already a grid axis; list all its values in one "
                                "--grid", field=key)
        seen.add(key)
        axes.append((key, values))
    return axes


def grid_configs(raw_config: dict[str, Any], grid: Sequence[str]) -> list[dict[str, Any]]:
    """One raw config per grid point: the cartesian product of the axes, first axis outermost.

    Each value is applied with :func:`alphaforge.config.apply_overrides` (parsed exactly like ``--set``);
    the configs are not validated here (:func:`run_sweep` skips invalid points with their reason).
    """
    axes = parse_grid(grid)
    if not axes:
        return [apply_overrides(raw_config, [])]
    total = math.prod(len(values) for _, values in axes)
    if total > MAX_GRID_POINTS:
        raise ConfigInvalid(f"--grid: {total} points is more than {MAX_GRID_POINTS}; narrow the grid",
                            field="grid")
    return [
        apply_overrides(raw_config, [f"{key}={value}" for (key, _), value in zip(axes, combo, strict=True)])
        for combo in itertools.product(*(values for _, values in axes))
    ]


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping) and obj:
        for key in obj:
            yield from _leaves(obj[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, obj


def point_params(raw_configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each point's coordinates: its ``strategy.params`` plus every other leaf that varies across the sweep,
    as ``{dotted.key: value}`` in first-seen key order."""
    flat = [dict(_leaves(raw)) for raw in raw_configs]
    keys: list[str] = []
    for leaves in flat:
        keys.extend(k for k in leaves if k not in keys)
    missing = object()
    varying = [k for k in keys if k.startswith("strategy.params.")
               or len({repr(leaves.get(k, missing)) for leaves in flat}) > 1]
    return [{k: leaves[k] for k in varying if k in leaves} for leaves in flat]
