"""The Store's side of the feature cache: ``features_cache`` rows (implements CacheMetaStore)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from alphaforge.db.models import FeaturesCacheMeta
from alphaforge.db.upsert import insert_ignore, upsert

if TYPE_CHECKING:
    from alphaforge.features.cache import CacheMeta


class CacheMetaMixin:
    def session(self) -> Any: ...  # provided by Store

    def get_cache_meta(self, meta_hash: str) -> CacheMeta | None:
        from alphaforge.features.cache import CacheMeta

        with self.session() as s:
            row = s.get(FeaturesCacheMeta, meta_hash)
            if row is None:
                return None
            return CacheMeta(
                meta_hash=row.meta_hash, spec_json=row.spec_json, built_at=row.built_at,
                rows=row.rows, columns=row.columns, digest=row.digest,
            )

    def add_cache_meta(self, meta: CacheMeta) -> None:
        """Record a built cache file; a row already there (another process built it) is kept."""
        with self.session() as s:
            insert_ignore(s, FeaturesCacheMeta.__table__, [dataclasses.asdict(meta)])  # type: ignore[arg-type]

    def replace_cache_meta(self, meta: CacheMeta) -> None:
        """Record a rebuilt cache file (after a corrupt or missing one was detected)."""
        with self.session() as s:
            upsert(s, FeaturesCacheMeta.__table__, [dataclasses.asdict(meta)], ["meta_hash"])  # type: ignore[arg-type]
