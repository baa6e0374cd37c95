"""The CI-width policy: a bootstrap CI wider than a configured limit is a warning or a failure.

Config: the validated ``[validation.ci_width]`` section, :class:`alphaforge.config.CIWidthConfig` (limits
per :class:`~alphaforge.enums.HeadlineMetric`, each a finite number > 0, and a
:class:`~alphaforge.enums.CIWidthMode`).
The width is ``high - low`` of the stored (float32) endpoints; a width strictly greater than its limit is a
violation. Verdict: no violation → ``passed``; violations in warn mode → ``warned``; in strict mode →
``failed``. The run itself always completes — the verdict is recorded, not raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from alphaforge.config import CIWidthConfig
from alphaforge.enums import CIWidthMode, HeadlineMetric, Verdict


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


def evaluate_ci_width(intervals: Mapping[str, tuple[float, float]], config: CIWidthConfig) -> CIWidthVerdict:
    """Check each configured metric's CI ``(low, high)`` in ``intervals`` against its width limit.

    With no interval at all (the bootstrap is disabled) there is nothing to check: ``passed``.
    """
    mode = str(config.mode)
    if not intervals:
        return CIWidthVerdict(Verdict.PASSED.value, mode)
    limits = {metric.value: float(config.limits[metric]) for metric in HeadlineMetric if metric in config.limits}
    violations = []
    for metric, limit in limits.items():
        low, high = intervals[metric]
        width = float(high) - float(low)
        if width > limit:
            violations.append(Violation(metric, width, limit))
    if not violations:
        verdict = Verdict.PASSED
    else:
        verdict = Verdict.WARNED if config.mode == CIWidthMode.WARN else Verdict.FAILED
    return CIWidthVerdict(verdict.value, mode, limits, tuple(violations))
