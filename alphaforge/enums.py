"""The enumerated values of the data model, defined once.

Every list of allowed values — the database's CHECK constraints (:mod:`alphaforge.db.models`), the config
validation (:mod:`alphaforge.config`), the lifecycle (:mod:`alphaforge.runs.service`), the CLI's ``choices``
and the compute stages — is taken from these classes, so adding or renaming a value is one edit here (plus
a migration when a CHECK changes).

Members are ``StrEnum``\\ s: each *is* its string value (``RunStatus.COMPLETED == "completed"``, JSON and
SQL see the plain string), so stored rows, canonical JSON and therefore every hash are unchanged. The
declaration order is the order the values are listed in (CHECK constraints, error messages, ``--help``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BootstrapMethod",
    "CIWidthMode",
    "FamilyScope",
    "HeadlineMetric",
    "InputKind",
    "MetricValueType",
    "PHASES",
    "RunStatus",
    "SweepStatus",
    "TradeSide",
    "Verdict",
    "WalkForwardMode",
    "values",
]


#: The phases of a run, in order (``phase_metrics.phase``; :mod:`alphaforge.runs.pipeline`).
PHASES: tuple[str, ...] = ("load", "features", "backtest", "metrics", "validation", "persist", "finalize")


class RunStatus(StrEnum):
    """``runs.status``: the lifecycle ``pending → running → completed | failed`` (failed → pending retries)."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"


class SweepStatus(StrEnum):
    """``sweeps.status``: ``running`` while its points execute, then ``completed`` (every point answered, some
    possibly as failed runs) or ``failed`` (the sweep itself stopped before answering every point)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class FamilyScope(StrEnum):
    """``family_reports.scope``: a report over the points of one sweep, or over every sweep of a study."""

    SWEEP = "sweep"
    STUDY = "study"


class TradeSide(StrEnum):
    """``trades.side``: ``flat`` when the row takes the position to zero, else by the sign of ``qty``."""

    BUY = "buy"
    SELL = "sell"
    FLAT = "flat"


class BootstrapMethod(StrEnum):
    """``validation.bootstrap.method`` / ``validation.bootstrap_method``: block bootstrap or i.i.d."""

    HADJ_BB = "hadj_bb"
    SIMPLE = "simple"


class MetricValueType(StrEnum):
    """``metrics.value_type``: how the text ``value`` parses back."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    JSON = "json"


class WalkForwardMode(StrEnum):
    """``validation.walk_forward.mode``: the configured params on every fold, or the best grid point."""

    FIXED = "fixed"
    OPTIMIZE = "optimize"


class CIWidthMode(StrEnum):
    """``validation.ci_width.mode``: a too-wide bootstrap CI is a warning or a failure."""

    WARN = "warn"
    STRICT = "strict"


class HeadlineMetric(StrEnum):
    """The statistics validation measures: bootstrap CIs, CI-width limits, the permutation statistic."""

    SHARPE = "sharpe"
    CAGR = "cagr"


class Verdict(StrEnum):
    """The CI-width policy's outcome (``validation_verdict``)."""

    PASSED = "passed"
    WARNED = "warned"
    FAILED = "failed"


class InputKind(StrEnum):
    """``input_digests.kind``: what an input digest resolves (:mod:`alphaforge.runs.resubmit`)."""

    DATA_FILE = "data_file"  # the bytes of an OHLCV file -> its data_hash
    CONFIG = "config"  # a raw config document (after overrides) -> its canonical config


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values of ``enum`` in declaration order (for CHECKs, messages and ``choices``)."""
    return tuple(member.value for member in enum)
