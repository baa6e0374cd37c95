"""The choices a family report depends on (``alphaforge sweep report`` options), apart from the computation so
that the CLI can offer them without importing the statistics stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from alphaforge.errors import ConfigInvalid

BENCHMARKS = ("buy_and_hold",)


@dataclass(frozen=True)
class ReportParams:
    """The choices a report depends on (part of its ``report_key``)."""

    benchmark: str = "buy_and_hold"
    n_blocks: int = 16
    reps: int = 1000
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ConfigInvalid(f"--benchmark {self.benchmark!r}: expected one of {', '.join(BENCHMARKS)}",
                                field="benchmark")
        if self.reps < 1:
            raise ConfigInvalid(f"--reps {self.reps}: must be >= 1", field="reps")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigInvalid(f"--alpha {self.alpha}: must be in (0, 1)", field="alpha")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
