"""AlphaForge: a deterministic research engine for trading-strategy backtests, persisted in a real database.

Public names are imported lazily, so ``import alphaforge.data`` does not pull in the database layer.
"""

from __future__ import annotations

import importlib
from typing import Any

from alphaforge._version import __version__

_PUBLIC = {
    # domain model
    "Base": "alphaforge.db.models",
    "Run": "alphaforge.db.models",
    "Trade": "alphaforge.db.models",
    "Equity": "alphaforge.db.models",
    "Validation": "alphaforge.db.models",
    "Metric": "alphaforge.db.models",
    "FeaturesCacheMeta": "alphaforge.db.models",
    "RunError": "alphaforge.db.models",
    "PhaseMetric": "alphaforge.db.models",
    "Study": "alphaforge.db.models",
    "Sweep": "alphaforge.db.models",
    "SweepPoint": "alphaforge.db.models",
    "FamilyReport": "alphaforge.db.models",
    "InputDigest": "alphaforge.db.models",
    "SCHEMA_VERSION": "alphaforge.db.migrate",
    # store and service
    "Store": "alphaforge.db.store",
    "RunService": "alphaforge.runs.service",
    "Pipeline": "alphaforge.runs.pipeline",
    "RunConfig": "alphaforge.config",
    "load_config": "alphaforge.config",
    "load_ohlcv": "alphaforge.data",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        if name == "errors":
            return importlib.import_module("alphaforge.errors")
        raise AttributeError(f"module 'alphaforge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
