"""The raw config document: a ``.toml`` / ``.json`` file read into a dict, and ``--set`` overrides applied to it.

Standard library only, so that ``alphaforge run`` can key an identical resubmission on the raw document
(:mod:`alphaforge.runs.resubmit`) without importing the compute stack; validation and defaults are
:func:`alphaforge.config.load_config`'s.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphaforge.errors import ConfigInvalid


def load_raw_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw dict of a ``.toml`` or ``.json`` config file (for :func:`apply_overrides`)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigInvalid(f"config file {str(p)!r}: unsupported type {suffix!r}; use .toml or .json",
                            field="config")
    try:
        if suffix == ".toml":
            with p.open("rb") as fh:
                raw: Any = tomllib.load(fh)
        else:
            raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigInvalid(f"config file {str(p)!r} not found; check the path", field="config") from None
    except (tomllib.TOMLDecodeError, ValueError, OSError) as exc:
        raise ConfigInvalid(f"config file {str(p)!r} cannot be read: {exc}", field="config") from None
    if not isinstance(raw, dict):
        raise ConfigInvalid(f"config file {str(p)!r}: the top level must be a table/object", field="config")
    return raw



def _literal(text: str) -> Any:
    """A TOML literal (ints, floats, bools, strings, arrays, inline tables), else JSON (null), else the text."""
    if "\n" not in text:
        try:
            doc = tomllib.loads(f"v = {text}")
            if list(doc) == ["v"] and not isinstance(doc["v"], datetime.date | datetime.time):
                return doc["v"]
        except tomllib.TOMLDecodeError:
            pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(raw: Mapping[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """A NEW dict with ``dotted.key=value`` assignments applied (values parsed as literals, else strings)."""
    out: dict[str, Any] = copy.deepcopy(dict(raw))
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigInvalid(f"override {assignment!r}: expected dotted.key=value, "
                                "e.g. strategy.params.fast=5", field=key.strip())
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part.strip())
            if child is None:
                child = node[part.strip()] = {}
            if not isinstance(child, dict):
                raise ConfigInvalid(f"override {assignment!r}: {'.'.join(parts[:i + 1])} is not a table",
                                    field=".".join(parts[:i + 1]))
            node = child
        node[parts[-1].strip()] = _literal(text.strip())
    return out
