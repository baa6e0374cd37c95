"""Features: pure indicator kernels (:mod:`.indicators`, :mod:`.chunked`) and the parquet cache (:mod:`.cache`).

Names are imported lazily so that importing the kernels does not pull in pyarrow or filelock.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Indicator": "alphaforge.features.indicators",
    "INDICATORS": "alphaforge.features.indicators",
    "get_indicator": "alphaforge.features.indicators",
    "resolve_indicator_params": "alphaforge.features.indicators",
    "compute_chunked": "alphaforge.features.indicators",
    "sma": "alphaforge.features.indicators",
    "ema": "alphaforge.features.indicators",
    "rolling_volatility": "alphaforge.features.indicators",
    "returns": "alphaforge.features.indicators",
    "rsi": "alphaforge.features.indicators",
    "zscore": "alphaforge.features.indicators",
    "atr": "alphaforge.features.indicators",
    "CacheMeta": "alphaforge.features.cache",
    "CacheMetaStore": "alphaforge.features.cache",
    "CacheEntry": "alphaforge.features.cache",
    "FeatureCache": "alphaforge.features.cache",
    "feature_spec": "alphaforge.features.cache",
    "meta_hash_of": "alphaforge.features.cache",
    "code_version": "alphaforge.features.cache",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'alphaforge.features' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
