"""Performance metrics of one backtest (kept apart from the robustness statistics in ``validation``).

Definitions (``r`` = the float64 per-bar simple returns of equity, ``n = len(r)``, ``B`` = bars per year):

* ``sharpe = mean(r) / std(r, ddof=1) * sqrt(B)``; 0.0 when ``n < 2`` or ``std == 0`` (all returns equal,
  tested exactly as ``max(r) == min(r)`` so rounding in the mean cannot produce a huge ratio, or a spread
  that underflows to 0). The same value
  follows from the sums ``S1 = Σr``, ``S2 = Σr²``: ``mean = S1/n``, ``var = (S2 - S1²/n) / (n - 1)``.
* ``cagr = expm1(Σ log1p(r) * B / n)``; 0.0 when ``n == 0``; -1.0 when any ``r <= -1`` (equity wiped out).
  From the sufficient statistic ``L = Σ log1p(r)``: :func:`cagr_from_log_sum`. The exponent is capped at
  ``CAGR_LOG_CAP = 88`` (the bootstrap's cap; ``e**88`` still fits a float32).
* ``total_return = Π(1 + r) - 1``; ``volatility = std(r, ddof=1) * sqrt(B)`` (0.0 when ``n < 2``).
* ``sortino = mean(r) / sqrt(mean(min(r, 0)²)) * sqrt(B)`` (target 0, downside over all bars); 0.0 when there
  is no negative return.
* ``max_drawdown = max(1 - W / running max W)`` with ``W = Π(1 + r)`` (a fraction >= 0).
* ``calmar = cagr / max_drawdown``; 0.0 when ``max_drawdown == 0``.
* ``turnover`` (annualized, two-sided) ``= Σ |qty| * price / mean(equity) * B / n`` over every trade row (price =
  the row's ``exit_price``, else its ``entry_price`` — the reference fill price); 0.0 without trades.
* ``n_trades`` = number of trade rows (fills; a zero-crossing fill is two rows).
* ``win_rate`` and ``profit_factor`` count **round trips net of both fills**: each *closing* row (one with an
  ``exit_price``; a partial reduce is a partial round trip) together with the entry it closes, at the average
  entry price of the book. Its net result is
  ``pnl - |qty| * (entry_price + exit_price) * cost_bps / 1e4 - borrow_cost``: the price PnL less the fee and
  slippage of the exit fill *and* of the entry fills it closes (``|qty| * entry_price * cost_bps / 1e4``, their
  exact share under the average-cost book since every fill of a run has the same ``cost_bps``) and less the
  borrow allocated over its life. The row's ``pnl`` itself stays gross price PnL. ``win_rate`` = net wins /
  closing rows (0.0 without closing rows); ``profit_factor`` = Σ net wins / |Σ net losses|: 0.0 without wins,
  ``PROFIT_FACTOR_CAP`` when there are wins but no losses.
* ``exposure`` = fraction of bars whose closing position is not flat.

Counts are ints; every float is finite (an overflowing value would be capped at ±float64 max, NaN → 0.0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alphaforge.backtest.calendar import infer_bars_per_year
from alphaforge.backtest.engine import BacktestResult
from alphaforge.errors import DataInvalid
from alphaforge.numeric import nan_to_zero_clipped

try:
    from alphaforge.metrics import _moments
except ImportError:  # built optional=True (setup.py): without a compiler numpy computes the same sums
    _moments = None  # type: ignore[assignment]

__all__ = ["CAGR_LOG_CAP", "METRIC_KEYS", "PROFIT_FACTOR_CAP", "cagr", "cagr_from_log_sum", "infer_bars_per_year",
           "performance_metrics", "sharpe"]

METRIC_KEYS: tuple[str, ...] = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "turnover",
    "n_trades", "win_rate", "profit_factor", "exposure",
)
PROFIT_FACTOR_CAP = 1e6
CAGR_LOG_CAP = 88.0


def _as_returns(returns: Any) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise DataInvalid(f"returns must be 1-D, got shape {r.shape}", column="returns")
    if not np.isfinite(r).all():
        raise DataInvalid(f"returns contain a non-finite value at bar {int(np.flatnonzero(~np.isfinite(r))[0])}",
                          column="returns")
    return r


def sharpe(returns: Any, bars_per_year: float) -> float:
    """``mean / std(ddof=1) * sqrt(bars_per_year)``; 0.0 when ``n < 2`` or ``std == 0``."""
    if _moments is not None:
        r = np.asarray(returns)
        if r.dtype == np.float64 and r.ndim == 1 and r.flags.c_contiguous:
            total, hi, lo = _moments.scan(r)
            if math.isfinite(total):  # then every return is finite (else the checks below say which is not)
                return _sharpe_from_sums(r, total, hi, lo, bars_per_year)
    r = _as_returns(returns)
    if len(r) < 2:
        return 0.0
    if float(r.max()) == float(r.min()):
        return 0.0
    std = float(np.std(r, ddof=1))
    if std == 0.0:  # distinct values whose spread underflows (subnormal differences)
        return 0.0
    return float(np.mean(r) / std * math.sqrt(bars_per_year))


def _sharpe_from_sums(r: np.ndarray, total: float, hi: float, lo: float, bars_per_year: float) -> float:
    """:func:`sharpe` from ``np.sum(r)`` and r's extremes, by the compiled kernel: numpy's own sums (pairwise, the
    same bits as ``np.mean`` and ``np.std(ddof=1)``), two passes over ``r`` instead of seven and no
    temporaries — a permutation test computes it once per permutation."""
    n = len(r)
    if n < 2 or hi == lo:
        return 0.0
    mean = total / n
    std = math.sqrt(_moments.squared_deviations(r, mean) / (n - 1))
    if std == 0.0:
        return 0.0
    return float(mean / std * math.sqrt(bars_per_year))


def cagr_from_log_sum(log_sum: float, n: int, bars_per_year: float) -> float:
    """CAGR from ``L = Σ log1p(r)`` over ``n`` bars (``-inf`` when a bar lost everything → -1.0)."""
    if n <= 0:
        return 0.0
    if log_sum == -math.inf:
        return -1.0
    return float(math.expm1(min(log_sum * bars_per_year / n, CAGR_LOG_CAP)))


def cagr(returns: Any, bars_per_year: float) -> float:
    """``exp(Σ log1p(r) * bars_per_year / n) - 1``; 0.0 for no bars, -1.0 once equity is wiped out."""
    r = _as_returns(returns)
    if len(r) and float(r.min()) <= -1.0:
        return -1.0
    return cagr_from_log_sum(float(np.sum(np.log1p(r))), len(r), bars_per_year)


def performance_metrics(result: BacktestResult, bars_per_year: float) -> dict[str, float | int]:
    """The :data:`METRIC_KEYS` of ``result`` (see the module docstring for every definition)."""
    r = _as_returns(result.returns)
    n = len(r)
    if len(r) and float(r.min()) <= -1.0:
        wealth = np.cumprod(np.maximum(1.0 + r, 0.0))
    else:
        wealth = np.exp(np.cumsum(np.log1p(r))) if n else r
    total_return = float(np.prod(1.0 + r) - 1.0) if n else 0.0
    peak = np.maximum.accumulate(wealth) if n else wealth
    max_dd = float(np.max(1.0 - wealth / peak)) if n else 0.0
    growth = cagr(r, bars_per_year)
    vol = float(np.std(r, ddof=1) * math.sqrt(bars_per_year)) if n >= 2 else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    sortino = float(np.mean(r)) / downside * math.sqrt(bars_per_year) if downside > 0 else 0.0

    trades = result.trades
    qty = trades["qty"].to_numpy(dtype=np.float64)
    exit_price = trades["exit_price"].to_numpy(dtype=np.float64)
    price = np.where(np.isnan(exit_price), trades["entry_price"].to_numpy(dtype=np.float64), exit_price)
    mean_equity = float(np.mean(result.equity["equity"].to_numpy(dtype=np.float64))) if n else 0.0
    traded = float(np.sum(np.abs(qty) * price))
    turnover = traded / mean_equity * bars_per_year / n if n and mean_equity > 0 else 0.0

    closing = ~np.isnan(exit_price)
    entry_price = trades["entry_price"].to_numpy(dtype=np.float64)
    net = (trades["pnl"].to_numpy(dtype=np.float64)
           - np.abs(qty) * (entry_price + exit_price) * trades["cost_bps"].to_numpy(dtype=np.float64) / 1e4
           - trades["borrow_cost"].to_numpy(dtype=np.float64))[closing]
    wins, losses = float(net[net > 0].sum()), float(-net[net < 0].sum())
    win_rate = float(np.count_nonzero(net > 0) / len(net)) if len(net) else 0.0
    if wins == 0.0:
        profit_factor = 0.0
    elif losses == 0.0:
        profit_factor = PROFIT_FACTOR_CAP
    else:
        profit_factor = min(wins / losses, PROFIT_FACTOR_CAP)
    position = np.asarray(result.position)
    exposure = float(np.count_nonzero(position != 0.0) / len(position)) if len(position) else 0.0

    values: dict[str, float | int] = {
        "total_return": nan_to_zero_clipped(total_return),
        "cagr": nan_to_zero_clipped(growth),
        "volatility": nan_to_zero_clipped(vol),
        "sharpe": nan_to_zero_clipped(sharpe(r, bars_per_year)),
        "sortino": nan_to_zero_clipped(sortino),
        "max_drawdown": nan_to_zero_clipped(max_dd),
        "calmar": nan_to_zero_clipped(growth / max_dd) if max_dd > 0 else 0.0,
        "turnover": nan_to_zero_clipped(turnover),
        "n_trades": int(len(trades)),
        "win_rate": win_rate,
        "profit_factor": nan_to_zero_clipped(profit_factor),
        "exposure": exposure,
    }
    return {key: values[key] for key in METRIC_KEYS}
