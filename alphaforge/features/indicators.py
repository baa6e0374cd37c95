"""Pure numpy indicator kernels and the indicator registry.

Every kernel accepts any numeric array(s), computes in float64 and returns float32 of the same length.
Warm-up positions (bars without enough history) are NaN. Conventions, fixed by each indicator's ``version``:

* ``sma(x, w)`` — mean of the last ``w`` values; warm-up ``w - 1``.
* ``ema(x, span)`` — ``alpha = 2 / (span + 1)``, ``y[t] = (1 - alpha) * y[t-1] + alpha * x[t]`` (pandas
  ``ewm(span, adjust=False)``), **seeded with the first non-NaN value** (``y = x`` there, no warm-up NaN;
  leading NaNs stay NaN). Reports warm-up 0; the first ~``span`` bars carry the seed's influence.
* ``returns(x, kind)`` — ``"log"``: ``ln(x[t] / x[t-1])``, ``"simple"``: ``x[t] / x[t-1] - 1``; first NaN.
* ``rolling_volatility(x, w)`` — sample std (ddof=1) of the last ``w`` simple returns; warm-up ``w``.
* ``zscore(x, w)`` — ``(x - rolling mean) / rolling std (ddof=1)``; warm-up ``w - 1``; NaN where std is 0.
* ``rsi(close, w)`` — Wilder: gains/losses of ``close.diff()``; the first averages (bar ``w``) are simple means
  of the first ``w`` gains/losses, then ``avg[t] = avg[t-1] + (g[t] - avg[t-1]) / w`` (alpha = 1/w);
  ``RSI = 100 * avg_gain / (avg_gain + avg_loss)``, 50 when both are 0; warm-up ``w`` (TA-Lib convention).
* ``atr(high, low, close, w)`` — Wilder: ``TR[t] = max(h-l, |h-c[t-1]|, |l-c[t-1]|)`` from bar 1; ATR at bar
  ``w`` is the mean of ``TR[1..w]``, then alpha = 1/w smoothing; warm-up ``w`` (TA-Lib convention).

Rolling windows: a window containing NaN gives NaN. Recursions (ema, rsi, atr): a NaN after the seed makes
that bar and every later bar NaN (a recursion never skips or invents data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from alphaforge.errors import ConfigInvalid
from alphaforge.features.chunked import (
    Kernel,
    RecursiveKernel,
    WindowKernel,
    first_nan,
    input_arrays,
    rolling_mean,
    rolling_std,
    rolling_zscore,
    run_kernel,
    smooth,
    smooth_filled,
)

NAN = float("nan")
#: Chunk size (bars) of :meth:`Indicator.compute`: 64k float64 temporaries (512 KiB each) stay in L2.
DEFAULT_CHUNK = 65_536

# --------------------------------------------------------------------------------------------------------
# window kernels (float64 slice starting at absolute bar `origin` -> float64)


def _sma_fn(window: int) -> Callable[[dict[str, np.ndarray], int], np.ndarray]:
    def fn(a: dict[str, np.ndarray], origin: int) -> np.ndarray:
        return rolling_mean(a["close"], window, origin)

    return fn


def _zscore_fn(window: int) -> Callable[[dict[str, np.ndarray], int], np.ndarray]:
    def fn(a: dict[str, np.ndarray], origin: int) -> np.ndarray:
        return rolling_zscore(a["close"], window, origin)

    return fn


def _simple_returns(x: np.ndarray) -> np.ndarray:
    r = np.empty_like(x)
    r[:1] = NAN
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x[1:], x[:-1], out=r[1:])
    r[1:] -= 1.0
    return r


def _returns_fn(kind: str) -> Callable[[dict[str, np.ndarray], int], np.ndarray]:
    def fn(a: dict[str, np.ndarray], origin: int) -> np.ndarray:
        x = a["close"]
        if kind == "simple":
            return _simple_returns(x)
        r = np.empty_like(x)
        r[:1] = NAN
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(x[1:] / x[:-1], out=r[1:])
        return r

    return fn


def _volatility_fn(window: int) -> Callable[[dict[str, np.ndarray], int], np.ndarray]:
    def fn(a: dict[str, np.ndarray], origin: int) -> np.ndarray:
        # returns[j] uses bars j-1, j; the rolling std over returns is aligned on the same absolute axis
        return rolling_std(_simple_returns(a["close"]), window, origin)[2]

    return fn


# --------------------------------------------------------------------------------------------------------
# recursive kernels: seed on the first bars, then step with a carried float64 state


def _ema_seed(a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
    return np.empty(0), None  # seeding happens in the first step that sees a non-NaN value


def _ema_step(span: int) -> Callable[[Any, dict[str, np.ndarray]], tuple[np.ndarray, Any]]:
    alpha = 2.0 / (span + 1.0)

    def step(state: float | None, a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        x = a["close"]
        start = 0
        if state is None:  # not seeded yet: the first non-NaN value seeds the recursion (y = x there)
            if x.size == 0:
                return np.empty(0), None
            if np.isnan(x[0]):
                finite = ~np.isnan(x)
                if not finite.any():
                    return np.full(x.size, NAN), None
                start = int(np.argmax(finite))
            y = smooth(None, x[start:], alpha)
        elif np.isnan(state):
            return np.full(x.size, NAN), state
        else:
            y = smooth(state, x, alpha)
        bad = first_nan(x[start:])
        if bad is not None:
            y = y.copy()  # smooth() may hand back pandas' read-only buffer
            y[bad:] = NAN
            state = NAN
        elif y.size:
            state = float(y[-1])
        if start:
            y = np.concatenate([np.full(start, NAN), y])
        return y, state

    return step


def _wilder_ratio(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    total = gain + loss
    r = np.multiply(gain, 100.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r /= total
    r[total == 0.0] = 50.0
    return r


def _rsi_kernel(window: int) -> RecursiveKernel:
    alpha = 1.0 / window

    def seed(a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        c = a["close"]
        out = np.full(c.size, NAN)
        if c.size < window + 1:
            return out, None
        d = np.diff(c)
        g, lo = np.maximum(d, 0.0), np.maximum(-d, 0.0)
        if first_nan(c) is not None:
            return out, (NAN, NAN, NAN)
        avg_g, avg_l = float(np.mean(g)), float(np.mean(lo))
        out[window] = _wilder_ratio(np.array([avg_g]), np.array([avg_l]))[0]
        return out, (avg_g, avg_l, float(c[-1]))

    def step(state: tuple[float, float, float], a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        c = a["close"]
        avg_g, avg_l, prev = state
        if np.isnan(avg_g):
            return np.full(c.size, NAN), state
        d = np.empty(c.size)
        d[:1] = c[:1] - prev
        np.subtract(c[1:], c[:-1], out=d[1:])
        gains, losses = np.empty(c.size + 1), np.empty(c.size + 1)  # [previous average, *inputs]
        gains[0], losses[0] = avg_g, avg_l
        np.maximum(d, 0.0, out=gains[1:])
        np.negative(d, out=losses[1:])
        np.maximum(losses[1:], 0.0, out=losses[1:])
        g, lo = smooth_filled(gains, alpha), smooth_filled(losses, alpha)
        out = _wilder_ratio(g, lo)
        bad = first_nan(c)
        if bad is not None:
            out = out.copy()  # smooth() may hand back pandas' read-only buffer
            out[bad:] = NAN
            return out, (NAN, NAN, NAN)
        return out, (float(g[-1]), float(lo[-1]), float(c[-1]))

    return RecursiveKernel(window + 1, seed, step)


def _true_range(h: np.ndarray, lo: np.ndarray, prev_close: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``max(h - lo, |h - prev_close|, |lo - prev_close|)``, written into ``out`` if given."""
    tr = np.subtract(h, lo, out=out)
    t = np.subtract(h, prev_close)
    np.abs(t, out=t)
    np.maximum(tr, t, out=tr)
    np.subtract(lo, prev_close, out=t)
    np.abs(t, out=t)
    np.maximum(tr, t, out=tr)
    return tr


def _atr_kernel(window: int) -> RecursiveKernel:
    alpha = 1.0 / window

    def seed(a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        h, lo, c = a["high"], a["low"], a["close"]
        out = np.full(c.size, NAN)
        if c.size < window + 1:
            return out, None
        if first_nan(h, lo, c) is not None:
            return out, (NAN, NAN)
        tr = _true_range(h[1:], lo[1:], c[:-1])
        atr0 = float(np.mean(tr))
        out[window] = atr0
        return out, (atr0, float(c[-1]))

    def step(state: tuple[float, float], a: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        h, lo, c = a["high"], a["low"], a["close"]
        prev_atr, prev_close = state
        if np.isnan(prev_atr):
            return np.full(c.size, NAN), state
        prev = np.empty_like(c)
        prev[0] = prev_close
        prev[1:] = c[:-1]
        buf = np.empty(c.size + 1)  # [previous ATR, *true ranges]
        buf[0] = prev_atr
        _true_range(h, lo, prev, out=buf[1:])
        out = smooth_filled(buf, alpha)
        bad = first_nan(h, lo, c)
        if bad is not None:
            out = out.copy()  # smooth() may hand back pandas' read-only buffer
            out[bad:] = NAN
            return out, (NAN, NAN)
        return out, (float(out[-1]), float(c[-1]))

    return RecursiveKernel(window + 1, seed, step)


# --------------------------------------------------------------------------------------------------------
# registry


def _int_param(name: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigInvalid(
            f"indicator {name!r}: parameter {key!r} must be an integer >= {minimum}, got {value!r}",
            field=f"{name}.{key}",
        )
    if int(value) < minimum:
        raise ConfigInvalid(
            f"indicator {name!r}: parameter {key!r} must be >= {minimum}, got {value}", field=f"{name}.{key}"
        )
    return int(value)


def _kind_param(name: str, key: str, value: Any, minimum: int) -> str:
    if value not in ("log", "simple"):
        raise ConfigInvalid(
            f"indicator {name!r}: parameter {key!r} must be 'log' or 'simple', got {value!r}",
            field=f"{name}.{key}",
        )
    return str(value)


_Check = Callable[[str, str, Any, int], Any]


@dataclass(frozen=True)
class Indicator:
    """One registered indicator: identity (name, version), inputs, default params and its kernel."""

    name: str
    version: str
    inputs: tuple[str, ...]
    defaults: Mapping[str, Any]
    _checks: Mapping[str, tuple[_Check, int]] = field(repr=False, compare=False)
    _kernel: Callable[[dict[str, Any]], Kernel] = field(repr=False, compare=False)
    _warmup: Callable[[dict[str, Any]], int] = field(repr=False, compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in and every value checked; ConfigInvalid names the bad parameter."""
        given = dict(params or {})
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise ConfigInvalid(
                f"indicator {self.name!r}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}",
                field=f"{self.name}.{unknown[0]}",
            )
        merged = {**self.defaults, **given}
        return {key: check(self.name, key, merged[key], minimum) for key, (check, minimum) in self._checks.items()}

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """Bars of history needed before the first non-NaN output (leading NaN outputs)."""
        return self._warmup(self.resolve(params))

    def column_name(self, params: Mapping[str, Any] | None = None) -> str:
        """Stable output column name, e.g. ``sma_10``, ``ema_20``, ``returns_log``."""
        p = self.resolve(params)
        return "_".join([self.name, *(str(p[k]) for k in sorted(p))])

    def kernel(self, params: Mapping[str, Any] | None = None) -> Kernel:
        return self._kernel(self.resolve(params))

    def compute(self, frame_or_arrays: Any, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """The indicator over the whole series; float32, same length as the inputs.

        Runs in :data:`DEFAULT_CHUNK`-bar chunks: bitwise the same result as one chunk, about twice as fast on
        long series (the temporaries stay in the CPU cache) and with bounded working memory.
        """
        return compute_chunked(self, frame_or_arrays, params, chunk_size=DEFAULT_CHUNK)


def compute_chunked(
    indicator: Indicator | str,
    arrays: Any,
    params: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """The indicator computed in chunks of ``chunk_size`` bars (None: one chunk).

    Bitwise identical to the one-chunk result for every ``chunk_size >= 1`` (see
    :mod:`alphaforge.features.chunked`); working memory is bounded by the chunk size plus the window.
    """
    ind = get_indicator(indicator) if isinstance(indicator, str) else indicator
    kernel = ind.kernel(params)
    named, n = input_arrays(arrays, ind.inputs)
    return run_kernel(kernel, named, n, max(n, 1) if chunk_size is None else chunk_size)


def _window(name: str, version: str, fn: Callable[[int], Any], extra_lookback: int, minimum: int) -> Indicator:
    return Indicator(
        name=name,
        version=version,
        inputs=("close",),
        defaults=MappingProxyType({"window": 20}),
        _checks=MappingProxyType({"window": (_int_param, minimum)}),
        _kernel=lambda p: WindowKernel(p["window"] + extra_lookback, fn(p["window"])),
        _warmup=lambda p: p["window"] - 1 + extra_lookback,
    )


INDICATORS: dict[str, Indicator] = {
    "sma": _window("sma", "1.0.0", _sma_fn, 0, 1),
    "ema": Indicator(
        "ema", "1.0.0", ("close",), MappingProxyType({"span": 20}),
        MappingProxyType({"span": (_int_param, 1)}),
        lambda p: RecursiveKernel(0, _ema_seed, _ema_step(p["span"])),
        lambda p: 0,
    ),
    "volatility": _window("volatility", "1.0.0", _volatility_fn, 1, 2),
    "returns": Indicator(
        "returns", "1.0.0", ("close",), MappingProxyType({"kind": "log"}),
        MappingProxyType({"kind": (_kind_param, 0)}),
        lambda p: WindowKernel(2, _returns_fn(p["kind"])),
        lambda p: 1,
    ),
    "rsi": Indicator(
        "rsi", "1.0.0", ("close",), MappingProxyType({"window": 14}),
        MappingProxyType({"window": (_int_param, 1)}),
        lambda p: _rsi_kernel(p["window"]),
        lambda p: p["window"],
    ),
    "zscore": _window("zscore", "1.0.0", _zscore_fn, 0, 2),
    "atr": Indicator(
        "atr", "1.0.0", ("high", "low", "close"), MappingProxyType({"window": 14}),
        MappingProxyType({"window": (_int_param, 1)}),
        lambda p: _atr_kernel(p["window"]),
        lambda p: p["window"],
    ),
}


def get_indicator(name: str) -> Indicator:
    """The registered indicator ``name``; ConfigInvalid (listing the known names) otherwise."""
    try:
        return INDICATORS[name]
    except (KeyError, TypeError):
        raise ConfigInvalid(
            f"unknown indicator {name!r}; known indicators: {sorted(INDICATORS)}", field="indicator"
        ) from None


def resolve_indicator_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``params`` of indicator ``name`` with defaults filled in and values checked (ConfigInvalid)."""
    return get_indicator(name).resolve(params)


# --------------------------------------------------------------------------------------------------------
# public kernels


def sma(x: Any, window: int) -> np.ndarray:
    return INDICATORS["sma"].compute({"close": x}, {"window": window})


def ema(x: Any, span: int) -> np.ndarray:
    return INDICATORS["ema"].compute({"close": x}, {"span": span})


def rolling_volatility(x: Any, window: int) -> np.ndarray:
    return INDICATORS["volatility"].compute({"close": x}, {"window": window})


def returns(x: Any, kind: str = "log") -> np.ndarray:
    return INDICATORS["returns"].compute({"close": x}, {"kind": kind})


def rsi(close: Any, window: int = 14) -> np.ndarray:
    return INDICATORS["rsi"].compute({"close": close}, {"window": window})


def zscore(x: Any, window: int) -> np.ndarray:
    return INDICATORS["zscore"].compute({"close": x}, {"window": window})


def atr(high: Any, low: Any, close: Any, window: int = 14) -> np.ndarray:
    return INDICATORS["atr"].compute({"high": high, "low": low, "close": close}, {"window": window})
