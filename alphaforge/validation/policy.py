"""The CI-width policy: a bootstrap CI wider than a configured limit is a warning or a failure.

Config (``validation.ci_width``): either ``{"limits": {"sharpe": 2.0, "cagr": 0.5}, "mode": "warn"}`` or the
flat form ``{"sharpe": 2.0, "mode": "strict"}``. Metrics are ``sharpe`` and ``cagr``; a limit is a finite
number > 0; ``mode`` is ``warn`` (default) or ``strict``. The width is ``high - low`` of the stored (float32)
endpoints; a width strictly greater than its limit is a violation. Verdict: no violation → ``passed``;
violations in warn mode → ``warned``; in strict mode → ``failed``. The run itself always completes — the
verdict is recorded, not raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from alphaforge.errors import ConfigInvalid

CI_METRICS: tuple[str, ...] = ("sharpe", "cagr")
CI_MODES: tuple[str, ...] = ("warn", "strict")
VERDICTS: tuple[str, ...] = ("passed", "warned", "failed")


@dataclass(frozen=True)
class Violation:
    metric: str
    width: float
    limit: float

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CIWidthVerdict:
    verdict: str
    mode: str
    limits: dict[str, float] = field(default_factory=dict)
    violations: tuple[Violation, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "mode": self.mode,
            "limits": dict(self.limits),
            "violations": [v.to_payload() for v in self.violations],
        }


def parse_ci_width(cfg: Mapping[str, Any] | None) -> tuple[dict[str, float], str]:
    """``(limits, mode)`` from either config form; raises :class:`ConfigInvalid` naming the field."""
    if not cfg:
        return {}, "warn"
    mode = cfg.get("mode", "warn")
    if mode not in CI_MODES:
        raise ConfigInvalid(f"validation.ci_width.mode must be one of {CI_MODES}, got {mode!r}")
    if "limits" in cfg:
        extra = sorted(set(cfg) - {"limits", "mode"})
        if extra:
            raise ConfigInvalid(f"validation.ci_width: unknown keys {extra} next to 'limits'")
        raw = cfg["limits"] or {}
        prefix = "validation.ci_width.limits"
    else:
        raw = {k: v for k, v in cfg.items() if k != "mode"}
        prefix = "validation.ci_width"
    limits: dict[str, float] = {}
    for metric, limit in raw.items():
        if metric not in CI_METRICS:
            raise ConfigInvalid(f"{prefix}.{metric}: unknown metric (allowed: {', '.join(CI_METRICS)})")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit) or limit <= 0:
            raise ConfigInvalid(f"{prefix}.{metric} must be a finite number > 0, got {limit!r}")
        limits[metric] = float(limit)
    return limits, str(mode)


def evaluate_ci_width(intervals: Mapping[str, tuple[float, float]], cfg: Mapping[str, Any] | None) -> CIWidthVerdict:
    """Check each configured metric's CI ``(low, high)`` in ``intervals`` against its width limit."""
    limits, mode = parse_ci_width(cfg)
    violations = []
    for metric in CI_METRICS:
        if metric not in limits:
            continue
        low, high = intervals[metric]
        width = float(high) - float(low)
        if width > limits[metric]:
            violations.append(Violation(metric, width, limits[metric]))
    if not violations:
        verdict = "passed"
    else:
        verdict = "warned" if mode == "warn" else "failed"
    return CIWidthVerdict(verdict, mode, limits, tuple(violations))
