"""Jinja filters: numbers, percentages, ages and timestamps as the pages show them (``—`` for missing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

DASH = "—"


def num(value: Any, digits: int = 3) -> str:
    if value is None or isinstance(value, bool):
        return DASH if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value: Any, digits: int = 2) -> str:
    return DASH if value is None else f"{float(value) * 100:.{digits}f}%"


def age(ms: Any) -> str:
    """A duration in milliseconds as ``42s``, ``5m``, ``3h``, ``2d``."""
    if ms is None:
        return DASH
    seconds = int(ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when(ms: Any) -> str:
    return DASH if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def when_ns(ns: Any) -> str:
    return DASH if ns is None else datetime.fromtimestamp(int(ns) / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")


def pretty(obj: Any) -> str:
    """Indented JSON (escaped by the template like any other text)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def short(run_hash: Any) -> str:
    return str(run_hash)[:12]


FILTERS: dict[str, Callable[..., str]] = {
    "num": num, "pct": pct, "age": age, "when": when, "when_ns": when_ns, "pretty": pretty, "short": short,
}
