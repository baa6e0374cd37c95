"""Sweeps and studies (the sweep-family tables, migration 0003): placeholder until they land."""

from __future__ import annotations

from typing import Any

from alphaforge.ui.params import QueryInvalid


def run_hashes_of_study(study: str) -> Any:
    raise QueryInvalid("study filter: this database has no sweep tables yet", param="study")
