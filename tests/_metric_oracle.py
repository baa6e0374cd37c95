"""The test oracle for performance metrics: each metric computed from its textbook definition.

Written independently of :mod:`alphaforge.metrics` (which is never called here): the conventions are the ones
its docstring documents — ``r`` = per-bar simple returns, ``n = len(r)``, ``B`` = bars per year, risk-free
rate 0, sample standard deviation (``n - 1``), a zero-denominator metric is 0.0 — and the formulas are the
plain ones, so an implementation that computes something else (another ddof, a missing annualization, the
wrong downside, a drawdown from the wrong peak) disagrees with them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the documented caps (part of the convention, not of the implementation)
CAGR_EXPONENT_CAP = 88.0
PROFIT_FACTOR_CAP = 1e6


def _values(returns: Any) -> np.ndarray:
    return np.asarray(returns, dtype=np.float64)


def mean(r: np.ndarray) -> float:
    return math.fsum(r) / len(r)


def sample_std(r: np.ndarray) -> float:
    """sqrt(Σ (r - mean)² / (n - 1))."""
    m = mean(r)
    return math.sqrt(math.fsum((r - m) ** 2) / (len(r) - 1))


def sharpe(returns: Any, bars_per_year: float) -> float:
    """mean / sample std * sqrt(B) (rf = 0); 0.0 for fewer than 2 bars or returns that are all equal."""
    r = _values(returns)
    if len(r) < 2 or r.max() == r.min():
        return 0.0
    std = sample_std(r)
    return 0.0 if std == 0.0 else mean(r) / std * math.sqrt(bars_per_year)


def volatility(returns: Any, bars_per_year: float) -> float:
    """sample std * sqrt(B); 0.0 for fewer than 2 bars."""
    r = _values(returns)
    return sample_std(r) * math.sqrt(bars_per_year) if len(r) >= 2 else 0.0


def sortino(returns: Any, bars_per_year: float) -> float:
    """mean / downside deviation * sqrt(B); downside deviation = sqrt(mean(min(r, 0)²)) over ALL bars (target 0);
    0.0 when no bar lost."""
    r = _values(returns)
    if len(r) == 0:
        return 0.0
    downside = math.sqrt(math.fsum(np.minimum(r, 0.0) ** 2) / len(r))
    return mean(r) / downside * math.sqrt(bars_per_year) if downside > 0 else 0.0


def total_return(returns: Any) -> float:
    """Π(1 + r) - 1."""
    return float(np.prod(1.0 + _values(returns))) - 1.0 if len(_values(returns)) else 0.0


def cagr(returns: Any, bars_per_year: float) -> float:
    """(final wealth)^(1 / years) - 1 with years = n / B; -1.0 once a bar loses everything, 0.0 without bars;
    the exponent log(wealth) / years is capped at 88."""
    r = _values(returns)
    if len(r) == 0:
        return 0.0
    if r.min() <= -1.0:
        return -1.0
    years = len(r) / bars_per_year
    growth = float(np.prod(1.0 + r))
    exponent = math.log(growth) / years
    return math.expm1(CAGR_EXPONENT_CAP) if exponent >= CAGR_EXPONENT_CAP else growth ** (1.0 / years) - 1.0


def max_drawdown(returns: Any) -> float:
    """The largest fall from a running peak of wealth W_t = Π_{s<=t}(1 + r_s), as a fraction of that peak
    (peaks over W_1..W_t, as documented)."""
    r = _values(returns)
    worst, peak, wealth = 0.0, -math.inf, 1.0
    for x in r:
        wealth *= 1.0 + x
        peak = max(peak, wealth)
        worst = max(worst, 1.0 - wealth / peak)
    return worst


def calmar(returns: Any, bars_per_year: float) -> float:
    """CAGR / max drawdown; 0.0 without a drawdown."""
    mdd = max_drawdown(returns)
    return cagr(returns, bars_per_year) / mdd if mdd > 0 else 0.0


def _net_closing_results(trades: Any) -> list[float]:
    """Net result of every round trip (closing row): its price pnl, less the exit fill's fee + slippage, less
    the entry fills' fee + slippage it closes, less its borrow.

    The entry cost is tracked from the *opening* rows, fill by fill (cash paid per unit held, averaged over the
    units as they are added, taken out pro rata as they are closed), never from the closing row's
    ``entry_price``: an independent account of "net of both fills".
    """
    out = []
    held, entry_cost = 0.0, 0.0  # units held and the entry costs paid for them (not yet closed)
    for row in trades.itertuples(index=False):
        rate = row.cost_bps / 1e4
        if math.isnan(row.exit_price):  # opening / increasing fill
            held += abs(row.qty)
            entry_cost += abs(row.qty) * row.entry_price * rate
            continue
        share = abs(row.qty) / held if held else 0.0
        closed_entry_cost = entry_cost * share
        entry_cost -= closed_entry_cost
        held -= abs(row.qty)
        if row.position_after == 0:
            held, entry_cost = 0.0, 0.0
        out.append(row.pnl - abs(row.qty) * row.exit_price * rate - closed_entry_cost - row.borrow_cost)
    return out


def win_rate(trades: Any) -> float:
    """Winning closing rows / closing rows; 0.0 without closing rows."""
    net = _net_closing_results(trades)
    return sum(1 for x in net if x > 0) / len(net) if net else 0.0


def profit_factor(trades: Any) -> float:
    """Gross wins / gross losses over the closing rows; 0.0 without wins, the cap with wins and no loss."""
    net = _net_closing_results(trades)
    wins, losses = math.fsum(x for x in net if x > 0), -math.fsum(x for x in net if x < 0)
    if wins == 0.0:
        return 0.0
    return PROFIT_FACTOR_CAP if losses == 0.0 else min(wins / losses, PROFIT_FACTOR_CAP)


def turnover(trades: Any, equity: Any, n_bars: int, bars_per_year: float) -> float:
    """Annualized two-sided turnover: Σ |qty| * fill price / mean equity * B / n (fill price = exit_price, else
    entry_price); 0.0 without bars."""
    traded = math.fsum(abs(row.qty) * (row.entry_price if math.isnan(row.exit_price) else row.exit_price)
                       for row in trades.itertuples(index=False))
    equity = _values(equity)
    return traded / mean(equity) * bars_per_year / n_bars if n_bars else 0.0


def exposure(position: Any) -> float:
    """Fraction of bars whose closing position is not flat."""
    p = list(np.asarray(position, dtype=np.float64))
    return sum(1 for x in p if x != 0.0) / len(p) if p else 0.0


def performance(result: Any, bars_per_year: float) -> dict[str, float | int]:
    """Every metric of a backtest result (``returns``, ``trades``, ``equity``, ``position``), by the definitions."""
    r = _values(result.returns)
    trades = result.trades.astype({c: np.float64 for c in ("qty", "entry_price", "exit_price", "pnl", "cost_bps",
                                                           "borrow_cost")})
    return {
        "total_return": total_return(r),
        "cagr": cagr(r, bars_per_year),
        "volatility": volatility(r, bars_per_year),
        "sharpe": sharpe(r, bars_per_year),
        "sortino": sortino(r, bars_per_year),
        "max_drawdown": max_drawdown(r),
        "calmar": calmar(r, bars_per_year),
        "turnover": turnover(trades, result.equity["equity"], len(r), bars_per_year),
        "n_trades": len(trades),
        "win_rate": win_rate(trades),
        "profit_factor": profit_factor(trades),
        "exposure": exposure(result.position),
    }
