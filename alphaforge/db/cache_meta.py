"""The Store's side of the feature cache: ``features_cache`` rows (implements CacheMetaStore)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from alphaforge.db.models import FeaturesCacheMeta
from alphaforge.db.upsert import insert_ignore, upsert

if TYPE_CHECKING:  # the cache file format (numpy, pyarrow) loads when the cache is used, not with the Store
    from alphaforge.features.cache_file import CacheMeta


_TABLE = FeaturesCacheMeta.__table__
#: built once: SQLAlchemy then reuses its cache key and compiled form instead of rebuilding them on every hit
_BY_HASH = select(_TABLE).where(_TABLE.c.meta_hash == bindparam("meta_hash"))


class CacheMetaMixin:
    def session(self) -> Any: ...  # provided by Store

    def read_connection(self) -> Any: ...  # provided by Store

    def get_cache_meta(self, meta_hash: str) -> CacheMeta | None:
        """The row of ``meta_hash`` (a read-only Core lookup of a prebuilt statement: it sits on every cache
        hit's path)."""
        with self.read_connection() as conn:
            row = conn.execute(_BY_HASH, {"meta_hash": meta_hash}).mappings().first()
        from alphaforge.features.cache_file import CacheMeta
        return None if row is None else CacheMeta(**row)

    def add_cache_meta(self, meta: CacheMeta) -> None:
        """Record a built cache file; a row already there (another process built it) is kept."""
        with self.session() as s:
            insert_ignore(s, _TABLE, [dataclasses.asdict(meta)])  # type: ignore[arg-type]

    def replace_cache_meta(self, meta: CacheMeta) -> None:
        """Record a rebuilt cache file (after a corrupt or missing one was detected)."""
        with self.session() as s:
            upsert(s, _TABLE, [dataclasses.asdict(meta)], ["meta_hash"])  # type: ignore[arg-type]
