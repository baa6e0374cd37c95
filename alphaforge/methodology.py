"""Methodology versions: the one place that says which version of each computation produces stored numbers.

Every computation whose output is stored with a run has a semantic version here, like the indicators do
(``features.indicators``): a change that alters any stored number bumps that computation's **major** version
(a change that cannot alter a stored number needs no bump). The versions are part of the run identity:

    run_hash = hash_obj({"config": <canonical config>, "data_hash": <data hash>, "methodology": <versions>})

so the same config on the same data under a different methodology is a *different* run (never reused), and the
old run stays in the database, readable and verifiable. A run recorded before versioning has no
``methodology`` in its manifest and its hash is the legacy ``hash_obj({"config": ..., "data_hash": ...})``;
it is shown as :data:`UNVERSIONED`.

Components
    ``calendar``      bars_per_year inference from the data's timestamps (``backtest.calendar``)
    ``backtest``      fills, costs, borrow accrual and the trade/equity rows (``backtest.engine``)
    ``metrics``       the performance metrics (``metrics``)
    ``permutation``   the permutation test (``validation.permutation``)
    ``bootstrap``     the HADJ-BB / simple bootstrap CIs and the block-length rule (``validation.bootstrap``)
    ``walk_forward``  walk-forward validation (``validation.walk_forward``)

History (1.0.0 = the behaviour before versioning)
    calendar 2.0.0      calendar-true bars_per_year for intraday and 7-day data (was 252 × 6.5 h sessions)
    backtest 2.0.0      borrow accrues by elapsed calendar time (was per bar at 1 / bars_per_year)
    metrics 2.0.0       win rate and profit factor net of both fills' costs (was the exit's only)
    bootstrap 2.0.0     Politis–White block length (was the first quiet ACF lag); trials drawn in chunks of 8,
                        each chunk with its own generator spawned from the seed (was one stream in trial order)
    bootstrap 3.0.0     the documented summation order of a trial's sums (sequential per table chunk, the
                        chunk sums in chunk order; was a BLAS matmul of start counts on the IID path and
                        numpy's pairwise sums on the block path): the same draws and distribution, the last
                        bits of a trial's statistics (so the digests) differ

Family reports (``family_reports``, :mod:`alphaforge.runs.family`) are versioned apart, by
:data:`FAMILY_METHODOLOGY`: they are computed *from* stored runs, so their version is stored on the report (a
report under another version is recomputed) and is not part of any run's identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alphaforge.hashing import hash_obj

#: The current version of every computation that produces stored numbers (bump a number here, nothing else).
METHODOLOGY: dict[str, str] = {
    "calendar": "2.0.0",
    "backtest": "2.0.0",
    "metrics": "2.0.0",
    "permutation": "1.0.0",
    "bootstrap": "3.0.0",
    "walk_forward": "1.0.0",
}

#: The version of the family statistics (DSR/PSR/MinTRL, PBO, SPA/Reality Check/StepM) a stored report holds.
FAMILY_METHODOLOGY = "1.0.0"

#: How a run recorded before methodology versions is labelled.
UNVERSIONED = "pre-versioning"


def methodology_versions() -> dict[str, str]:
    """A copy of the current versions (what a new run records in its manifest and its hash)."""
    return dict(METHODOLOGY)


def identity_hash(config: Mapping[str, Any], data_hash: str, methodology: Mapping[str, str] | None) -> str:
    """The run_hash of a canonical config on a data hash under ``methodology`` (``None``: a legacy run)."""
    if methodology is None:
        return hash_obj({"config": config, "data_hash": data_hash})
    return hash_obj({"config": config, "data_hash": data_hash, "methodology": dict(methodology)})


def recorded_methodology(manifest: Mapping[str, Any]) -> dict[str, str] | None:
    """The versions a run's manifest records, or ``None`` for a run from before versioning."""
    versions = manifest.get("methodology")
    return dict(versions) if isinstance(versions, Mapping) else None
