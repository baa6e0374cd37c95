"""The strategy registry: features known at bar t's close → target exposure in [-1, 1] of equity.

A strategy declares the indicator columns it needs (:class:`FeatureRequest`, named by
``Indicator.column_name(params)`` — the feature cache uses the same names) and maps them to a float32 target
exposure per bar. Besides the indicator columns, ``exposure`` also receives the frame's raw price columns
(``open``, ``high``, ``low``, ``close``) under those names — momentum and breakout need prices at earlier bars,
which are not indicators. Every output at bar t uses only values at bars <= t; NaN inputs (warm-up) give
exposure 0; long/short when ``allow_short``, else clipped to [0, 1] (a short signal means flat).

Registered strategies (defaults in brackets):

* ``buy_and_hold`` — always 1.
* ``sma_cross`` (fast=10, slow=50) — +1 when SMA(fast) > SMA(slow), -1 when below, 0 when equal or warm-up.
* ``ema_cross`` (fast=12, slow=26) — the same on EMAs; the EMA kernel has no NaN warm-up (seeded with the
  first close), so the first ``slow - 1`` bars are forced flat, like an SMA's warm-up.
* ``momentum`` (lookback=20, threshold=0.0) — ``r = close[t] / close[t-lookback] - 1``; +1 when
  ``r > threshold``, -1 when ``r < -threshold``, else 0; flat for ``t < lookback``.
* ``zscore_reversion`` (window=20, entry=2.0, exit=0.5) — stateful: an event at bar t is "enter short" when
  ``z > entry``, "enter long" when ``z < -entry``, "exit" when ``|z| < exit`` or z is NaN (warm-up, flat
  prices); otherwise the previous state is held. Vectorized as a forward fill of the last event.
* ``breakout`` (lookback=20) — stateful: "long" when ``close[t]`` > the highest high of bars
  ``t-lookback .. t-1``, "short" (flat when long-only) when ``close[t]`` < their lowest low; the last event is
  held (forward fill); flat for ``t < lookback``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.features.chunked import ewm_weights
from alphaforge.features.indicators import get_indicator

if TYPE_CHECKING:  # imported where used: a permutation worker runs the strategies without pandas (issue #13)
    import pandas as pd

try:
    from alphaforge.backtest import _signals
except ImportError:  # built optional=True (setup.py): without a compiler the numpy rules run
    _signals = None  # type: ignore[assignment]

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
Features = Mapping[str, np.ndarray]
#: A compiled signal rule: (features and prices, resolved params, lower clip bound) -> the float32 exposure, or
#: None when its inputs are not the kernel's (e.g. float64 features): the numpy rule then runs.
Compiled = Callable[[Features, Mapping[str, Any], float], "np.ndarray | None"]


@dataclass(frozen=True)
class FeatureRequest:
    """One indicator column a strategy needs, e.g. ``FeatureRequest("sma", {"window": 10})``."""

    indicator: str
    params: dict[str, Any]

    @property
    def column(self) -> str:
        """The column name (``Indicator.column_name(params)``, e.g. ``sma_10``)."""
        return get_indicator(self.indicator).column_name(self.params)


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: defaults, parameter checks, feature requests and the exposure rule."""

    name: str
    defaults: Mapping[str, Any]
    _kinds: Mapping[str, str] = field(repr=False, compare=False)
    _features: Callable[[Mapping[str, Any]], list[FeatureRequest]] = field(repr=False, compare=False)
    _signal: Callable[[Features, Mapping[str, Any]], np.ndarray] = field(repr=False, compare=False)
    _check: Callable[[Mapping[str, Any]], str | None] = field(repr=False, compare=False)
    #: the raw price columns the signal itself reads (besides its indicators'); all four unless declared
    prices: tuple[str, ...] = PRICE_COLUMNS
    #: the same rule compiled (alphaforge/backtest/_signals.c, bit-identical), used when the kernel is built
    _compiled: Compiled | None = field(default=None, repr=False, compare=False)
    #: the rule compiled from the price columns, its indicators computed in the same pass (for re-runs on many
    #: price series: :class:`PreparedStrategy`); the same exposure as the indicators then the rule
    _from_prices: Compiled | None = field(default=None, repr=False, compare=False)

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in; unknown names, wrong types (bool is not int) and bad values → ConfigInvalid."""
        if params is not None and not isinstance(params, Mapping):
            raise ConfigInvalid(f"strategy.params must be a mapping, got {type(params).__name__}",
                                field="strategy.params")
        given = dict(params or {})
        for key in sorted(given):
            if key not in self.defaults:
                known = ", ".join(sorted(self.defaults)) or "none"
                raise ConfigInvalid(
                    f"strategy.params.{key}: unknown parameter for strategy {self.name!r} (known: {known})",
                    field=f"strategy.params.{key}",
                )
        out: dict[str, Any] = {}
        for key, default in self.defaults.items():
            value = given.get(key, default)
            where = f"strategy.params.{key}"
            if self._kinds[key] == "int":
                if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                    raise ConfigInvalid(f"{where} must be an integer, got {value!r}", field=where)
                if value < 1:
                    raise ConfigInvalid(f"{where} must be >= 1, got {value!r}", field=where)
                out[key] = int(value)
            else:
                if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
                    raise ConfigInvalid(f"{where} must be a number, got {value!r}", field=where)
                if not math.isfinite(value) or value < 0:
                    raise ConfigInvalid(f"{where} must be finite and >= 0, got {value!r}", field=where)
                out[key] = float(value)
        problem = self._check(out)
        if problem is not None:
            key, _, message = problem.partition(":")
            raise ConfigInvalid(f"strategy.params.{key}: {message.strip()} (strategy {self.name!r})",
                                field=f"strategy.params.{key}")
        return out

    def features(self, params: Mapping[str, Any] | None = None) -> list[FeatureRequest]:
        """The indicator columns this strategy needs for ``params``."""
        return self._features(self.resolve(params))

    def exposure(self, features: Features, params: Mapping[str, Any] | None, allow_short: bool) -> np.ndarray:
        """Float32 target exposure per bar in [-1, 1] (``allow_short``) or [0, 1]; NaN inputs → 0."""
        p = self.resolve(params)
        for req in self._features(p):
            if req.column not in features:
                raise DataInvalid(f"strategy {self.name!r} needs feature column {req.column!r}; got "
                                  f"{sorted(features)}", column=req.column)
        lo = -1.0 if allow_short else 0.0
        if _signals is not None and self._compiled is not None:
            compiled = self._compiled(features, p, lo)
            if compiled is not None:
                return compiled
        raw = np.asarray(self._signal(features, p), dtype=np.float64)
        raw = np.where(np.isnan(raw), 0.0, raw)
        return np.clip(raw, lo, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# signal helpers (pure numpy; every value at bar t uses bars <= t only)


def _f64(features: Features, name: str) -> np.ndarray:
    if name not in features:
        raise DataInvalid(f"strategy input column {name!r} is missing; got {sorted(features)}", column=name)
    return np.asarray(features[name], dtype=np.float64)


def _sign_of_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sign(a - b)  # NaN stays NaN → 0 exposure


def _hold_last_event(events: np.ndarray) -> np.ndarray:
    """Forward-fill: each bar takes the last non-NaN event at or before it (0 before the first event).

    pandas' compiled forward fill: values are copied, never computed, so it is exactly the index-based fill
    (``maximum.accumulate`` of the event positions) it replaced, about 10x faster."""
    import pandas as pd

    return pd.Series(events, copy=False).ffill().fillna(0.0).to_numpy(dtype=np.float64, copy=True)


def _window_extreme(x: np.ndarray, window: int, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``out[j] = fn-reduce(x[j : j + window])`` for ``j <= len(x) - window`` (exact, O(n log window))."""
    span, acc = 1, x
    while span * 2 <= window:  # acc[j] = reduce(x[j : j + span])
        acc = fn(acc[:-span], acc[span:])
        span *= 2
    m = len(x) - window + 1
    return fn(acc[:m], acc[window - span: window - span + m])


def _channel(x: np.ndarray, window: int, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``out[t] = reduce(x[t-window .. t-1])`` (bars strictly before t); NaN for ``t < window``."""
    out = np.full(len(x), np.nan)
    if len(x) > window:
        out[window:] = _window_extreme(x[:-1], window, fn)
    return out


def _sma_cross(f: Features, p: Mapping[str, Any]) -> np.ndarray:
    return _sign_of_diff(_f64(f, f"sma_{p['fast']}"), _f64(f, f"sma_{p['slow']}"))


def _ema_cross(f: Features, p: Mapping[str, Any]) -> np.ndarray:
    s = _sign_of_diff(_f64(f, f"ema_{p['fast']}"), _f64(f, f"ema_{p['slow']}"))
    s[: p["slow"] - 1] = 0.0
    return s


def _momentum(f: Features, p: Mapping[str, Any]) -> np.ndarray:
    close, lb, th = _f64(f, "close"), p["lookback"], p["threshold"]
    ret = np.full(len(close), np.nan)
    ret[lb:] = close[lb:] / close[:-lb] - 1.0
    with np.errstate(invalid="ignore"):
        return np.where(ret > th, 1.0, np.where(ret < -th, -1.0, 0.0))


def _zscore_reversion(f: Features, p: Mapping[str, Any]) -> np.ndarray:
    z = _f64(f, f"zscore_{p['window']}")
    with np.errstate(invalid="ignore"):  # later rules win: exit, then short, then long, then NaN -> exit
        events = np.where(np.abs(z) < p["exit"], 0.0, np.nan)
        np.copyto(events, -1.0, where=z > p["entry"])
        np.copyto(events, 1.0, where=z < -p["entry"])
    np.copyto(events, 0.0, where=np.isnan(z))
    return _hold_last_event(events)


def _breakout(f: Features, p: Mapping[str, Any]) -> np.ndarray:
    close, lb = _f64(f, "close"), p["lookback"]
    upper = _channel(_f64(f, "high"), lb, np.maximum)
    lower = _channel(_f64(f, "low"), lb, np.minimum)
    with np.errstate(invalid="ignore"):
        events = np.where(close > upper, 1.0, np.nan)
        np.copyto(events, -1.0, where=close < lower)
    return _hold_last_event(events)


# --------------------------------------------------------------------------------------------------------
# the same rules compiled (alphaforge/backtest/_signals.c): float32 features in (as the indicators give them;
# other dtypes take the numpy rule), the clipped float32 exposure out


def _f32(features: Features, name: str) -> np.ndarray | None:
    arr = np.asarray(features[name])
    return np.ascontiguousarray(arr) if arr.dtype == np.float32 and arr.ndim == 1 else None


def _cross_compiled(indicator: str, warm: Callable[[Mapping[str, Any]], int]) -> Compiled:
    def rule(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
        fast, slow = _f32(f, f"{indicator}_{p['fast']}"), _f32(f, f"{indicator}_{p['slow']}")
        if fast is None or slow is None or len(fast) != len(slow):
            return None
        out = np.empty(len(fast), dtype=np.float32)
        _signals.cross(fast, slow, warm(p), lo, out)
        return out

    return rule


def _zscore_compiled(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
    z = _f32(f, f"zscore_{p['window']}")
    if z is None:
        return None
    out = np.empty(len(z), dtype=np.float32)
    _signals.zscore_hold(z, p["entry"], p["exit"], lo, out)
    return out


def _prices(f: Features, names: tuple[str, ...]) -> list[np.ndarray]:
    """The price columns ``names`` for a kernel: all float32 as given (it widens them exactly), else float64."""
    given = [np.asarray(f[c]) if c in f else _f64(f, c) for c in names]
    if not all(a.dtype == np.float32 for a in given):
        given = [_f64(f, c) for c in names]
    return [np.ascontiguousarray(a) for a in given]


def _breakout_compiled(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
    high, low, close = _prices(f, ("high", "low", "close"))
    if not len(high) == len(low) == len(close) or not high.ndim == low.ndim == close.ndim == 1:
        return None
    out = np.empty(len(close), dtype=np.float32)
    _signals.breakout(high, low, close, p["lookback"], lo, out)
    return out


def _momentum_compiled(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
    (close,) = _prices(f, ("close",))
    out = np.empty(len(close), dtype=np.float32)
    _signals.momentum(close, p["lookback"], p["threshold"], lo, out)
    return out


def _sma_from_prices(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
    (close,) = _prices(f, ("close",))
    out = np.empty(len(close), dtype=np.float32)
    _signals.sma_cross(close, p["fast"], p["slow"], lo, out)
    return out


def _ema_from_prices(f: Features, p: Mapping[str, Any], lo: float) -> np.ndarray | None:
    (close,) = _prices(f, ("close",))
    out = np.empty(len(close), dtype=np.float32)
    weights = (*ewm_weights(2.0 / (p["fast"] + 1.0)), *ewm_weights(2.0 / (p["slow"] + 1.0)))
    return out if _signals.ema_cross(close, *weights, p["slow"] - 1, lo, out) else None


def _fast_below_slow(p: Mapping[str, Any]) -> str | None:
    return None if p["fast"] < p["slow"] else f"fast: must be < slow ({p['fast']} >= {p['slow']})"


def _window_at_least_two(p: Mapping[str, Any]) -> str | None:
    if p["window"] < 2:
        return f"window: must be >= 2 for a z-score (sample std), got {p['window']}"
    if p["entry"] <= 0:
        return f"entry: must be > 0, got {p['entry']}"
    if p["exit"] >= p["entry"]:
        return f"exit: must be < entry ({p['exit']} >= {p['entry']})"
    return None


def _ok(p: Mapping[str, Any]) -> str | None:
    return None


def _strategy(name: str, defaults: dict[str, Any], features: Callable[[Mapping[str, Any]], list[FeatureRequest]],
              signal: Callable[[Features, Mapping[str, Any]], np.ndarray],
              check: Callable[[Mapping[str, Any]], str | None] = _ok, prices: tuple[str, ...] = (),
              compiled: Compiled | None = None, from_prices: Compiled | None = None) -> Strategy:
    kinds = {k: "int" if isinstance(v, int) else "float" for k, v in defaults.items()}
    return Strategy(name, MappingProxyType(defaults), MappingProxyType(kinds), features, signal, check, prices,
                    compiled, from_prices)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        _strategy("buy_and_hold", {}, lambda p: [], lambda f, p: np.ones(len(f["close"])), prices=("close",)),
        _strategy("sma_cross", {"fast": 10, "slow": 50},
                  lambda p: [FeatureRequest("sma", {"window": p["fast"]}), FeatureRequest("sma", {"window": p["slow"]})],
                  _sma_cross, _fast_below_slow, compiled=_cross_compiled("sma", lambda p: 0),
                  from_prices=_sma_from_prices),
        _strategy("ema_cross", {"fast": 12, "slow": 26},
                  lambda p: [FeatureRequest("ema", {"span": p["fast"]}), FeatureRequest("ema", {"span": p["slow"]})],
                  _ema_cross, _fast_below_slow, compiled=_cross_compiled("ema", lambda p: p["slow"] - 1),
                  from_prices=_ema_from_prices),
        _strategy("momentum", {"lookback": 20, "threshold": 0.0}, lambda p: [], _momentum, prices=("close",),
                  compiled=_momentum_compiled),
        _strategy("zscore_reversion", {"window": 20, "entry": 2.0, "exit": 0.5},
                  lambda p: [FeatureRequest("zscore", {"window": p["window"]})], _zscore_reversion,
                  _window_at_least_two, compiled=_zscore_compiled),
        _strategy("breakout", {"lookback": 20}, lambda p: [], _breakout, prices=("high", "low", "close"),
                  compiled=_breakout_compiled),
    )
}


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; ConfigInvalid naming it and listing the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ConfigInvalid(f"strategy.name: unknown strategy {name!r}; known strategies: {sorted(STRATEGIES)}",
                            field="strategy.name") from None


def resolve_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` of strategy ``name`` with defaults filled in and checked (ConfigInvalid naming the field)."""
    return get_strategy(name).resolve(params)


def _price_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataInvalid(f"frame lacks price column(s) {missing}; pass the normalized OHLCV frame", columns=missing)
    return {c: frame[c].to_numpy() for c in PRICE_COLUMNS}


def compute_features(name: str, params: Mapping[str, Any] | None, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The indicator columns strategy ``name`` needs, computed directly from the kernels (float32)."""
    out: dict[str, np.ndarray] = {}
    for req in get_strategy(name).features(params):
        out[req.column] = get_indicator(req.indicator).compute(frame, req.params)
    return out


@dataclass(frozen=True)
class PreparedStrategy:
    """A strategy with its parameters resolved and its indicators looked up once, for many re-runs.

    ``exposure(prices)`` takes the price columns as arrays of one length (a permuted frame's columns: valid
    by construction, so nothing is re-checked; at least those in ``inputs``, in any float dtype holding the
    same values) and returns exactly what :func:`target_exposure` returns on a frame holding them.
    """

    strategy: Strategy
    params: dict[str, Any]
    requests: tuple[FeatureRequest, ...]
    inputs: frozenset[str]  # every column the indicators and the signal read (Strategy.prices)

    def exposure(self, prices: Mapping[str, np.ndarray], allow_short: bool) -> np.ndarray:
        fused = self.strategy._from_prices
        if _signals is not None and fused is not None:
            out = fused(prices, self.params, -1.0 if allow_short else 0.0)
            if out is not None:
                return out
        features = {req.column: get_indicator(req.indicator).compute(prices, req.params) for req in self.requests}
        return self.strategy.exposure({**features, **prices}, self.params, allow_short)


def prepare_strategy(name: str, params: Mapping[str, Any] | None) -> PreparedStrategy:
    """:class:`PreparedStrategy` of ``name`` with ``params`` (ConfigInvalid as :func:`resolve_params`)."""
    strategy = get_strategy(name)
    p = strategy.resolve(params)
    requests = tuple(strategy.features(p))
    inputs = frozenset(c for req in requests for c in get_indicator(req.indicator).inputs) | set(strategy.prices)
    return PreparedStrategy(strategy, p, requests, inputs)


def target_exposure(name: str, params: Mapping[str, Any] | None, frame: pd.DataFrame, allow_short: bool,
                    features: Features | None = None) -> np.ndarray:
    """Float32 target exposure of ``name`` on ``frame`` (features computed unless given, keyed by column)."""
    strategy = get_strategy(name)
    p = strategy.resolve(params)
    given = compute_features(name, p, frame) if features is None else features
    n = len(frame)
    for col, arr in given.items():
        if len(arr) != n:
            raise DataInvalid(f"feature column {col!r} has {len(arr)} rows, the frame has {n}", column=col)
    return strategy.exposure({**given, **_price_columns(frame)}, p, allow_short)
