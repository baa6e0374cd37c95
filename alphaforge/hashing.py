"""Canonical JSON, sha256 helpers and the seed derivation rule.

Canonical JSON (data model): ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
encoded as UTF-8. Every hash AlphaForge takes goes through these helpers.

Seed derivation (documented rule): ``seed_root`` is a uint32. The seed of a component (bootstrap,
permutation, walk_forward, jitter, ...) is
``numpy.random.SeedSequence(seed_root, spawn_key=(SEED_COMPONENTS.index(name),)).generate_state(1)[0]`` —
exactly the n-th child that ``SeedSequence(seed_root).spawn(...)`` would give, so adding a component at the end
of :data:`SEED_COMPONENTS` never changes the seeds of the others.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy loads with the first seed derivation, not with every hash
    import mmap

    import numpy as np

UINT32 = 2**32

#: Ordered component names; append only (the position is the spawn key).
SEED_COMPONENTS: tuple[str, ...] = ("bootstrap", "permutation", "walk_forward", "jitter", "synthetic")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj`` (sorted keys, no whitespace, UTF-8 characters kept)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: bytes | bytearray | memoryview | mmap.mmap | str) -> str:
    """Hex sha256 of bytes (or any buffer, e.g. a mapped file), or of a string encoded as UTF-8."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class BackgroundSha256:
    """The sha256 of a buffer, computed on a thread from the moment this is created: hashlib releases the GIL
    on large buffers, so the hashing runs beside what the caller does meanwhile (parsing or decoding the same
    bytes). :meth:`hexdigest` waits for it."""

    def __init__(self, data: bytes | bytearray | memoryview | mmap.mmap) -> None:
        self._digest: list[str] = []
        self._thread = threading.Thread(target=lambda: self._digest.append(hashlib.sha256(data).hexdigest()),
                                        daemon=True)
        self._thread.start()

    def hexdigest(self) -> str:
        self._thread.join()
        return self._digest[0]


def hash_obj(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return sha256_hex(canonical_json(obj))


def sha256_file(path: str | Any, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def seed_from_hex(hex_digest: str) -> int:
    """A uint32 seed from a hex digest (its first 8 hex digits)."""
    return int(hex_digest[:8], 16) % UINT32


def component_seed(seed_root: int, component: str) -> int:
    """The uint32 seed of ``component`` derived from ``seed_root`` (see module docstring)."""
    if not 0 <= seed_root < UINT32:
        raise ValueError(f"seed_root must be a uint32, got {seed_root}")
    index = SEED_COMPONENTS.index(component)
    import numpy as np

    state = np.random.SeedSequence(seed_root, spawn_key=(index,)).generate_state(1, dtype=np.uint32)
    return int(state[0])


def rng_for(seed_root: int, component: str) -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` for ``component``; never the global random state."""
    import numpy as np

    return np.random.default_rng(component_seed(seed_root, component))
