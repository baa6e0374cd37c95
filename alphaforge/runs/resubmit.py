"""An identical resubmission answered from the database, without loading the data or the compute stack.

The same config on the same data is the same run (``run_hash``), answered by its stored results. The slow path
knows the run only after loading, validating and hashing the data (pandas; about a second at 500k bars) and
after parsing the config (which imports the compute stack). This module finds it from two recorded facts
(``input_digests``, :mod:`alphaforge.db.digests`):

* ``data_file``: the bytes of an OHLCV file → its ``data_hash`` (recorded by the pipeline after a load: the
  digest is of the very bytes that were parsed, :func:`alphaforge.data.load_ohlcv`);
* ``config``: a raw config document (after ``--set`` overrides) → its canonical config (recorded by
  ``alphaforge run`` after validating it).

Each fact is keyed by a digest of the exact input — the sha256 of the file's bytes (read whole, never its name
or modification time; the reader format its name selects is part of the key), the canonical JSON of the raw
document — together with the **code fingerprint** (:func:`code_fingerprint`): the sha256 of every source file of
the installed ``alphaforge`` package, the Python version and the numpy, pandas and pyarrow versions, i.e.
everything that turns those inputs into identities. A changed byte, a changed code, another format: another key,
a miss, answered by the slow path, which records the fact for next time. On a hit the run hash is computed as
the slow path computes it (:func:`alphaforge.methodology.identity_hash` of the canonical config, the data hash
and the current methodology versions), and only a *completed* run is answered here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from alphaforge.db.models import Run
from alphaforge.db.store import Store
from alphaforge.enums import InputKind, RunStatus
from alphaforge.hashing import canonical_json, hash_obj, sha256_file
from alphaforge.methodology import identity_hash, methodology_versions
from alphaforge.runs.queries import RunOutcome, stored_outcome
from alphaforge.runs.service import epoch_ms

if TYPE_CHECKING:
    from alphaforge.config import RunConfig
    from alphaforge.data import Dataset

#: The libraries whose behaviour decides how a file's bytes parse (their versions are in the fingerprint).
PARSING_LIBRARIES = ("numpy", "pandas", "pyarrow")


@functools.cache
def code_fingerprint() -> str:
    """sha256 over the package's source files (relative path and bytes, in path order), the Python version and
    the versions of :data:`PARSING_LIBRARIES` (computed once per process)."""
    from importlib.metadata import PackageNotFoundError, version

    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        data = path.read_bytes()
        h.update(f"{path.relative_to(package).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    versions = {}
    for name in PARSING_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    h.update(canonical_json({"python": sys.version, "libraries": versions}).encode())
    return h.hexdigest()


def data_format(path: str | os.PathLike[str]) -> str:
    """The part of a file name that selects its reader (``.csv``, ``.csv.gz``, ``.parquet``…), lowercased."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    return "".join(suffixes[-2:]) if suffixes[-1:] == [".gz"] else "".join(suffixes[-1:])


def data_file_digest(path: str | os.PathLike[str], file_sha256: str) -> str:
    """The ``input_digests`` key of a data file whose bytes have sha256 ``file_sha256``."""
    return hash_obj({"kind": str(InputKind.DATA_FILE), "sha256": file_sha256, "format": data_format(path),
                     "code": code_fingerprint()})


def config_digest(raw: Mapping[str, Any]) -> str | None:
    """The ``input_digests`` key of a raw config document (``None`` when it has no canonical JSON, e.g. a TOML
    date: such a config always takes the slow path)."""
    try:
        document = canonical_json(raw)
    except (TypeError, ValueError):
        return None
    return hash_obj({"kind": str(InputKind.CONFIG), "document": document, "code": code_fingerprint()})


def remember_data_file(store: Store, dataset: Dataset) -> None:
    """Record the ``data_hash`` of the file ``dataset`` was loaded from (nothing for a dataset not read from a
    file)."""
    if dataset.source is None or dataset.file_sha256 is None:
        return
    store.record_input(data_file_digest(dataset.source, dataset.file_sha256), InputKind.DATA_FILE,
                       dataset.data_hash, epoch_ms())


def remember_config(store: Store, raw: Mapping[str, Any], config: RunConfig) -> None:
    """Record the canonical config that the raw document ``raw`` validated to."""
    digest = config_digest(raw)
    if digest is not None:
        store.record_input(digest, InputKind.CONFIG, canonical_json(config.to_dict()), epoch_ms())


def known_data_hash(store: Store, path: str | os.PathLike[str]) -> str | None:
    """The recorded ``data_hash`` of the file at ``path`` as its bytes are now, or ``None``."""
    try:
        file_sha256 = sha256_file(path)
    except OSError:
        return None  # the loader reports it
    return store.resolved_input(data_file_digest(path, file_sha256), InputKind.DATA_FILE)


def completed_outcome(store: Store, canonical_config: Mapping[str, Any], data_hash: str) -> RunOutcome | None:
    """The stored outcome of the run of ``canonical_config`` on ``data_hash`` if it is completed, else ``None``."""
    run_hash = identity_hash(canonical_config, data_hash, methodology_versions())
    with store.read_session() as s:
        status = s.scalar(select(Run.status).where(Run.run_hash == run_hash))
    if status != RunStatus.COMPLETED:
        return None
    return stored_outcome(store, run_hash, reused=True)


def find_completed(store: Store, raw: Mapping[str, Any], data: str | os.PathLike[str]) -> RunOutcome | None:
    """The completed run of the raw config document ``raw`` (overrides applied) on the file ``data``, from the
    recorded facts alone; ``None`` when a fact is missing or the run is not completed (take the slow path)."""
    digest = config_digest(raw)
    if digest is None:
        return None
    canonical = store.resolved_input(digest, InputKind.CONFIG)
    if canonical is None:
        return None
    data_hash = known_data_hash(store, data)
    if data_hash is None:
        return None
    return completed_outcome(store, json.loads(canonical), data_hash)
