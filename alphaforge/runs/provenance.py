"""Run identity inputs and the provenance manifest (``runs.manifest_json``).

The manifest records what produced a run: package and library versions, the config hash, data_hash, seeds,
schema version, anomaly counters, and (after the features phase) every feature-cache ``meta_hash`` + ``digest``
used, and the methodology versions (:mod:`alphaforge.methodology`). Library versions are provenance, not
identity: they are not part of ``run_hash``; the methodology versions are.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphaforge._version import __version__
from alphaforge.db.migrate import SCHEMA_VERSION
from alphaforge.hashing import component_seed
from alphaforge.methodology import identity_hash, methodology_versions

if TYPE_CHECKING:
    from alphaforge.config import RunConfig
    from alphaforge.data import Dataset

_LIBRARIES = ("numpy", "pandas", "pyarrow", "sqlalchemy", "alembic")


@dataclass(frozen=True)
class NewRun:
    """What :meth:`RunService.submit` needs to create a run row."""

    run_hash: str
    config: dict[str, Any]
    manifest: dict[str, Any]
    data_hash: str
    seed_root: int
    bootstrap_seed: int
    walk_forward_spec: dict[str, Any] | None = None


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    # a run's creation reads them, a listing does not
    from importlib.metadata import PackageNotFoundError, version

    out = {"alphaforge": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return tuple(out.items())


def library_versions() -> dict[str, str]:
    """The package and library versions of this process (read once: installed versions do not change under a
    running interpreter)."""
    return dict(_versions())


def new_run(config: RunConfig, dataset: Dataset) -> NewRun:
    """The run row to create for ``config`` on ``dataset``: identity, seeds, spec and initial manifest."""
    seed_root = config.seed_root
    bootstrap_seed = component_seed(seed_root, "bootstrap")
    canonical = config.to_dict()
    methodology = methodology_versions()
    manifest: dict[str, Any] = {
        "versions": library_versions(),
        "config_hash": config.config_hash,
        "data_hash": dataset.data_hash,
        "data_source": dataset.source,
        "n_bars": dataset.n_bars,
        "seeds": {"seed_root": seed_root, "bootstrap_seed": bootstrap_seed,
                  "permutation_seed": component_seed(seed_root, "permutation"),
                  "walk_forward_seed": component_seed(seed_root, "walk_forward"),
                  "rule": "SeedSequence(seed_root, spawn_key=(index of component,)).generate_state(1)[0]"},
        "schema_version": SCHEMA_VERSION,
        "anomaly_counters": dict(dataset.anomaly_counters),
        "features": [],
        # the versions of every computation that produces the run's stored numbers: part of run_hash
        "methodology": methodology,
    }
    return NewRun(
        run_hash=identity_hash(canonical, dataset.data_hash, methodology), config=canonical, manifest=manifest,
        data_hash=dataset.data_hash, seed_root=seed_root, bootstrap_seed=bootstrap_seed,
        walk_forward_spec=canonical["validation"]["walk_forward"],
    )
