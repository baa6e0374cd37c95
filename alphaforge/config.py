"""The run configuration, validated: TOML/JSON/dict -> :class:`RunConfig`, its config_hash and seed_root.

Rules
    * Unknown keys at any level and wrong types are :class:`~alphaforge.errors.ConfigInvalid` naming the
      dotted field (``execution.fee_bps: expected a number, got 'abc'``); ``exc.context["field"]`` holds it.
      ``bool`` is never an int; ints are accepted (and stored as floats) where floats are expected.
    * Every default is filled in *before* hashing, so an omitted default and the same value written out give
      the same ``config_hash``; ``fee_bps = 1`` and ``fee_bps = 1.0`` hash the same.
    * ``to_dict()`` is the canonical, TOML-shaped dict (``load_config(cfg.to_dict()) == cfg``).
      ``features.cache_dir`` is a location, not an input: it is kept on the object but out of ``to_dict()``
      and hence out of ``config_hash``.
    * ``[validation.ci_width]`` holds one ``metric = max width`` entry per metric (``sharpe``, ``cagr``) plus
      ``mode``; when no metric is listed the limits are :data:`DEFAULT_CI_WIDTH_LIMITS`.
    * ``[validation.walk_forward]`` absent (or ``None``) disables walk-forward; ``mode = "optimize"`` needs a
      non-empty ``grid`` whose every point is valid for the strategy, ``mode = "fixed"`` takes no grid.
    * ``seed_root`` is the explicit ``seed`` (a uint32) else ``hashing.seed_from_hex(config_hash)``.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

from alphaforge.backtest.engine import ExecutionParams
from alphaforge.backtest.strategies import resolve_params
from alphaforge.config_raw import apply_overrides as apply_overrides  # re-exported: the config API is here
from alphaforge.config_raw import load_raw_config as load_raw_config
from alphaforge.enums import BootstrapMethod, CIWidthMode, HeadlineMetric, WalkForwardMode, values
from alphaforge.errors import ConfigInvalid
from alphaforge.features.indicators import resolve_indicator_params
from alphaforge.hashing import UINT32, hash_obj, seed_from_hex
from alphaforge.methodology import identity_hash, methodology_versions
from alphaforge.numeric import finite_number

DEFAULT_CI_WIDTH_LIMITS: dict[str, float] = {HeadlineMetric.SHARPE.value: 2.0}
MAX_GRID_POINTS = 10_000
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PermutationConfig:
    n: int = 200


@dataclass(frozen=True)
class BootstrapConfig:
    n: int = 1000
    method: BootstrapMethod = BootstrapMethod.HADJ_BB
    ci: float = 0.95
    jitter: int = 1


@dataclass(frozen=True)
class WalkForwardConfig:
    folds: int = 5
    mode: WalkForwardMode = WalkForwardMode.FIXED
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CIWidthConfig:
    limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CI_WIDTH_LIMITS))
    mode: CIWidthMode = CIWidthMode.WARN


@dataclass(frozen=True)
class ValidationConfig:
    permutation: PermutationConfig = field(default_factory=PermutationConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    walk_forward: WalkForwardConfig | None = None
    ci_width: CIWidthConfig = field(default_factory=CIWidthConfig)


@dataclass(frozen=True)
class FeaturesConfig:
    cache_dir: str | None = None
    # extra research indicators built (and cached) with the run: [{"name": "rsi", "params": {"window": 14}}]
    indicators: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration; build it with :func:`load_config`."""

    symbol: str
    seed: int | None
    strategy: StrategyConfig
    execution: ExecutionParams = field(default_factory=ExecutionParams)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)

    def to_dict(self) -> dict[str, Any]:
        """The canonical dict: all defaults filled in, TOML-shaped, without ``features.cache_dir``."""
        v, wf = self.validation, self.validation.walk_forward
        return {
            "symbol": self.symbol,
            "seed": self.seed,
            "strategy": {"name": self.strategy.name, "params": copy.deepcopy(self.strategy.params)},
            "execution": asdict(self.execution),
            "validation": {
                "permutation": {"n": v.permutation.n},
                "bootstrap": {"n": v.bootstrap.n, "method": str(v.bootstrap.method), "ci": v.bootstrap.ci,
                              "jitter": v.bootstrap.jitter},
                "walk_forward": None if wf is None else {"folds": wf.folds, "mode": str(wf.mode),
                                                         "grid": copy.deepcopy(wf.grid)},
                "ci_width": {**v.ci_width.limits, "mode": str(v.ci_width.mode)},
            },
            # extra research indicators are inputs (their cache entries are part of the run's record); the
            # key is present only when some are configured, so configs without them hash as before
            **({"features": {"indicators": copy.deepcopy(list(self.features.indicators))}}
               if self.features.indicators else {}),
        }

    @property
    def config_hash(self) -> str:
        return hash_obj(self.to_dict())

    @property
    def seed_root(self) -> int:
        return self.seed if self.seed is not None else seed_from_hex(self.config_hash)


def run_hash_of(config: RunConfig, data_hash: str) -> str:
    """The run identity under the current methodology:
    ``hash_obj({"config": config.to_dict(), "data_hash": data_hash, "methodology": methodology_versions()})``
    (:func:`alphaforge.methodology.identity_hash`)."""
    return identity_hash(config.to_dict(), data_hash, methodology_versions())


# --------------------------------------------------------------------------- field readers
def _bad(path: str, what: str, value: Any = None) -> ConfigInvalid:
    return ConfigInvalid(f"{path}: {what}", field=path, value=value)


def _got(value: Any) -> str:
    return f"got {value!r}" if isinstance(value, str | int | float | bool) or value is None \
        else f"got {type(value).__name__} {value!r}"


class _Table:
    """A mapping read under a dotted path; refuses unknown keys up front."""

    def __init__(self, raw: Any, path: str, allowed: Sequence[str]) -> None:
        where = path or "config"
        if not isinstance(raw, Mapping):
            raise _bad(where, f"expected a table, {_got(raw)}", raw)
        for key in raw:
            if key not in allowed:
                dotted = f"{path}.{key}" if path else str(key)
                raise _bad(dotted, f"unknown key; allowed keys here: {', '.join(allowed)}", key)
        self.raw, self.path = raw, path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def number(self, key: str, default: float, *, low: float | None = None, low_open: bool = False,
               high_open: float | None = None) -> float:
        raw = self.raw.get(key, default)
        value = finite_number(raw)
        if value is None:
            raise _bad(self.at(key), f"expected a number, {_got(raw)}", raw)
        if low is not None and (value <= low if low_open else value < low):
            raise _bad(self.at(key), f"must be {'>' if low_open else '>='} {low:g}, got {value:g}", value)
        if high_open is not None and value >= high_open:
            raise _bad(self.at(key), f"must be < {high_open:g}, got {value:g}", value)
        return value

    def integer(self, key: str, default: int, *, low: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(self.at(key), f"expected an integer, {_got(value)}", value)
        if value < low:
            raise _bad(self.at(key), f"must be >= {low}, got {value}", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise _bad(self.at(key), f"expected true or false, {_got(value)}", value)
        return value

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.raw and default is None:
            raise _bad(self.at(key), "required key is missing")
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise _bad(self.at(key), f"expected a non-empty string, {_got(value)}", value)
        return value

    def choice(self, key: str, default: E) -> E:
        """One of the values of ``default``'s enum (the message lists them all)."""
        enum = type(default)
        value = self.text(key, default.value)
        if value not in values(enum):
            allowed = ", ".join(map(repr, values(enum)))
            raise _bad(self.at(key), f"must be one of {allowed}, got {value!r}", value)
        return enum(value)

    def table(self, key: str, allowed: Sequence[str]) -> _Table:
        value = self.raw.get(key)
        return _Table({} if value is None else value, self.at(key), allowed)


# --------------------------------------------------------------------------- sections
def _resolve(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return dict(resolve_params(name, params))


def _strategy(top: _Table) -> StrategyConfig:
    if "strategy" not in top.raw:
        raise _bad("strategy", "required section is missing (needs at least name = \"...\")")
    t = top.table("strategy", ("name", "params"))
    name = t.text("name")
    params = t.raw.get("params", {})
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise _bad("strategy.params", f"expected a table of parameters, {_got(params)}", params)
    return StrategyConfig(name, _resolve(name, params))


def _execution(top: _Table) -> ExecutionParams:
    """The execution section: :class:`ExecutionParams` owns its fields, defaults and bounds."""
    t = top.table("execution", tuple(f.name for f in fields(ExecutionParams)))
    return ExecutionParams(**t.raw)


def _walk_forward(v: _Table, strategy: StrategyConfig) -> WalkForwardConfig | None:
    if v.raw.get("walk_forward") is None:
        return None
    d = WalkForwardConfig()
    t = v.table("walk_forward", ("folds", "mode", "grid"))
    folds, mode = t.integer("folds", d.folds, low=2), t.choice("mode", d.mode)
    grid_raw = t.raw.get("grid", {})
    where = t.at("grid")
    if not isinstance(grid_raw, Mapping):
        raise _bad(where, f"expected a table of parameter -> list of values, {_got(grid_raw)}", grid_raw)
    for key, points in grid_raw.items():
        if not isinstance(points, list) or not points:
            raise _bad(f"{where}.{key}", f"expected a non-empty list of values, {_got(points)}", points)
        if any(isinstance(x, Mapping | list) for x in points):
            raise _bad(f"{where}.{key}", "grid values must be scalars (numbers, strings, booleans)", points)
    if mode == WalkForwardMode.OPTIMIZE and not grid_raw:
        raise _bad(where, "mode = \"optimize\" needs a non-empty grid, e.g. grid = { fast = [5, 10] }")
    if mode == WalkForwardMode.FIXED and grid_raw:
        raise _bad(where, "a grid is only used with mode = \"optimize\"; remove it or switch the mode")
    return WalkForwardConfig(folds, mode, _normalized_grid(where, strategy, dict(grid_raw)))


def _normalized_grid(where: str, strategy: StrategyConfig, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Check every grid point with the strategy registry; store each value as the registry resolves it."""
    keys = sorted(grid)
    if math.prod(len(grid[k]) for k in keys) > MAX_GRID_POINTS:
        raise _bad(where, f"more than {MAX_GRID_POINTS} grid points; narrow the grid")
    resolved: dict[str, list[Any]] = {k: list(grid[k]) for k in keys}
    for combo in itertools.product(*(range(len(grid[k])) for k in keys)):
        point = {k: grid[k][i] for k, i in zip(keys, combo, strict=True)}
        try:
            params = _resolve(strategy.name, {**strategy.params, **point})
        except ConfigInvalid as exc:
            raise _bad(where, f"point {point} is not valid for strategy {strategy.name!r}: {exc.message}",
                       point) from None
        for k, i in zip(keys, combo, strict=True):
            if k not in params:
                raise _bad(f"{where}.{k}", f"{k!r} is not a parameter of strategy {strategy.name!r}", k)
            resolved[k][i] = params[k]
    return resolved


def _ci_width(v: _Table) -> CIWidthConfig:
    t = v.table("ci_width", ("mode", *values(HeadlineMetric)))
    limits = {m: t.number(m, 0.0, low=0.0, low_open=True) for m in values(HeadlineMetric) if m in t.raw}
    return CIWidthConfig(limits or dict(DEFAULT_CI_WIDTH_LIMITS), t.choice("mode", CIWidthConfig.mode))


def _validation(top: _Table, strategy: StrategyConfig) -> ValidationConfig:
    v = top.table("validation", ("permutation", "bootstrap", "walk_forward", "ci_width"))
    d = BootstrapConfig()
    p = v.table("permutation", ("n",))
    b = v.table("bootstrap", ("n", "method", "ci", "jitter"))
    bootstrap = BootstrapConfig(n=b.integer("n", d.n, low=0), method=b.choice("method", d.method),
                                ci=b.number("ci", d.ci, low=0.0, low_open=True, high_open=1.0),
                                jitter=b.integer("jitter", d.jitter, low=0))
    return ValidationConfig(PermutationConfig(p.integer("n", PermutationConfig.n, low=0)), bootstrap,
                            _walk_forward(v, strategy), _ci_width(v))


def _features(top: _Table) -> FeaturesConfig:
    t = top.table("features", ("cache_dir", "indicators"))
    cache_dir = None if t.raw.get("cache_dir") is None else t.text("cache_dir")
    return FeaturesConfig(cache_dir, _indicators(t.raw.get("indicators"), t.at("indicators")))


def _indicators(raw: Any, where: str) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad(where, "expected a list of {name, params} tables", raw)
    out = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"name", "params"} or "name" not in item:
            raise _bad(here, "expected a table with keys name and params", item)
        if not isinstance(item["name"], str):
            raise _bad(f"{here}.name", "expected a string", item["name"])
        params = item.get("params", {})
        if not isinstance(params, Mapping):
            raise _bad(f"{here}.params", "expected a table", params)
        try:
            resolved = resolve_indicator_params(item["name"], params)
        except ConfigInvalid as exc:
            raise ConfigInvalid(f"{here}: {exc.message}", field=here) from exc
        out.append({"name": item["name"], "params": resolved})
    return tuple(out)


# --------------------------------------------------------------------------- entry points
def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> RunConfig:
    """Validate a config file (``.toml`` / ``.json``) or dict and fill in every default."""
    if not isinstance(source, Mapping | str | os.PathLike):
        raise _bad("config", f"expected a table (dict) or a .toml/.json path, {_got(source)}", source)
    raw = source if isinstance(source, Mapping) else load_raw_config(source)
    top = _Table(raw, "", ("symbol", "seed", "strategy", "execution", "validation", "features"))
    symbol = top.text("symbol")
    seed = raw.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad("seed", f"expected an integer, {_got(seed)}", seed)
        if not 0 <= seed < UINT32:
            raise _bad("seed", f"must be in [0, 2**32), got {seed}", seed)
    strategy = _strategy(top)
    return RunConfig(symbol, seed, strategy, _execution(top), _validation(top, strategy), _features(top))
