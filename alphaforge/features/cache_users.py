"""The databases that use a feature-cache directory: one marker file each, under ``<cache_dir>/.databases/``.

Two databases can share a cache directory: two SQLite files in one folder share the default ``alphaforge_cache/``
beside them, and ``$ALPHAFORGE_CACHE_DIR`` gives every database the same one. A cache file then serves the
``features_cache`` rows of either, and a gc pass of one database, which sees only its own rows, must not take it
for garbage. Every :class:`~alphaforge.features.cache.FeatureCache` registers its database here when it is
created (a marker that already exists costs one ``stat``); ``alphaforge runs gc`` reads the markers and, while
another database is registered, removes only its own database's rows and never a file (see
:mod:`alphaforge.runs.cache_gc`).

A marker names its database by :func:`alphaforge.db.urls.database_identity`. A SQLite database whose file no
longer exists no longer counts; a PostgreSQL one counts until its marker is removed (``runs gc
--only-this-database`` treats the directory as the current database's alone). One PostgreSQL database reached
by two host names (``localhost`` and ``127.0.0.1``) registers twice and looks shared with itself: gc then keeps
files it could have removed, never the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

from alphaforge.features.cache_file import publish
from alphaforge.hashing import sha256_hex

DATABASES_DIR = ".databases"
MARKER_SUFFIX = ".db"


def marker_path(cache_dir: Path, identity: str) -> Path:
    """``<cache_dir>/.databases/<sha256(identity)[:16]>.db``: the marker of one database."""
    return cache_dir / DATABASES_DIR / f"{sha256_hex(identity)[:16]}{MARKER_SUFFIX}"


def register(cache_dir: Path, identity: str | None) -> None:
    """Record that the database ``identity`` uses ``cache_dir`` (once; atomic). ``None`` (an in-memory
    database) records nothing. Raises CacheUnavailable when the directory cannot be written."""
    if identity is None:
        return
    path = marker_path(cache_dir, identity)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    publish(path, identity.encode("utf-8"))


def registered(cache_dir: Path) -> list[str]:
    """Every database registered in ``cache_dir`` that may still exist, sorted (a SQLite file that is gone is
    left out; an unreadable marker is skipped)."""
    try:
        markers = sorted((cache_dir / DATABASES_DIR).glob(f"*{MARKER_SUFFIX}"))
    except OSError:
        return []
    identities = set()
    for marker in markers:
        try:
            identity = marker.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if identity and not _gone(identity):
            identities.add(identity)
    return sorted(identities)


def _gone(identity: str) -> bool:
    prefix = "sqlite:///"
    return identity.startswith(prefix) and not os.path.exists(identity[len(prefix):])
