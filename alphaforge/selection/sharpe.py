"""Probabilistic and Deflated Sharpe ratios and the minimum track record length.

References: Bailey & López de Prado (2012), "The Sharpe ratio efficient frontier", J. of Risk 15(2) (PSR,
MinTRL); Bailey & López de Prado (2014), "The deflated Sharpe ratio", J. of Portfolio Management 40(5) (DSR).

Conventions (every Sharpe ratio here is **per bar**, not annualized)
    ``SR = mean(r) / std(r, ddof=1)`` (0 when the variance is within rounding of 0);
    ``skew = m3 / m2**1.5`` and ``kurtosis = m4 / m2**2`` from the central moments ``m_k = mean((r - mean)**k)``
    (population moments; the kurtosis is *not* excess: 3 for a normal series).

Formulas
    * ``PSR(SR*) = Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR**2))`` with
      ``T`` the number of bars. The radicand is ``>= 0`` for any distribution (Pearson: kurtosis >= 1 + skew²).
    * ``E[max SR] = sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with ``g`` the
      Euler–Mascheroni constant, ``N`` the number of trials and ``V`` the variance of the trials' Sharpe
      ratios: the rejection threshold ``SR0`` of the DSR. One trial is no selection: ``SR0 = 0`` for ``N = 1``.
    * ``DSR = PSR(SR0)``.
    * ``MinTRL(SR*, p) = 1 + (1 - skew * SR + (kurtosis - 1) / 4 * SR**2) * (Phi^-1(p) / (SR - SR*))**2``
      bars, the track record at which ``PSR(SR*)`` reaches ``p``; infinite when ``SR <= SR*``.

:func:`deflated_sharpe` takes the best trial's per-bar returns and every trial's per-bar Sharpe ratio
(the best one included): ``N = len(trial_sharpes)``, ``V = var(trial_sharpes, ddof=1)`` (0 for one trial),
``psr = PSR(0)``, ``dsr = PSR(SR0)`` and ``min_trl`` against ``SR0`` at ``p = 0.95``: the number of bars
the best trial needs for its *deflated* Sharpe ratio to reach 95 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection._arrays import ZERO_VARIANCE_REL, as_series, json_float

EULER_GAMMA = 0.5772156649015329
#: The confidence of the reported minimum track record length.
MIN_TRL_PROB = 0.95


def _sharpe_variance_term(sharpe: float, skew: float, kurtosis: float) -> float:
    """``1 - skew * SR + (kurtosis - 1) / 4 * SR**2``: the (T - 1)-scaled variance of the Sharpe estimator."""
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not term > 0.0:
        raise ConfigInvalid(
            f"skew {skew} and kurtosis {kurtosis} give a non-positive Sharpe-ratio variance at SR {sharpe} "
            "(kurtosis is the non-excess kurtosis and must be at least 1 + skew**2)", field="kurtosis")
    return term


def probabilistic_sharpe_ratio(sharpe: float, sharpe0: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """``PSR(sharpe0)``: the probability that the true per-bar Sharpe ratio exceeds ``sharpe0`` given an
    estimate ``sharpe`` from ``n_obs`` bars with the given skewness and (non-excess) kurtosis."""
    if n_obs < 2:
        raise ConfigInvalid(f"PSR needs at least 2 observations, got {n_obs}", field="n_obs")
    term = _sharpe_variance_term(sharpe, skew, kurtosis)
    return float(norm.cdf((sharpe - sharpe0) * math.sqrt(n_obs - 1.0) / math.sqrt(term)))


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """The expected maximum of ``n_trials`` Sharpe ratios of zero mean and variance ``var_sharpe`` (the
    extreme-value approximation of the DSR paper): the DSR's rejection threshold ``SR0``."""
    if n_trials < 1:
        raise ConfigInvalid(f"n_trials must be at least 1, got {n_trials}", field="n_trials")
    if not var_sharpe >= 0.0 or not math.isfinite(var_sharpe):
        raise ConfigInvalid(f"var_sharpe must be finite and >= 0, got {var_sharpe}", field="var_sharpe")
    if n_trials == 1:
        return 0.0
    z = (1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(var_sharpe) * z)


def min_track_record_length(sharpe: float, sharpe0: float, skew: float, kurtosis: float,
                            prob: float = MIN_TRL_PROB) -> float:
    """Bars needed for ``PSR(sharpe0) >= prob`` at this per-bar Sharpe, skew and kurtosis (``inf`` when
    ``sharpe <= sharpe0``: no track record is long enough)."""
    if not 0.0 < prob < 1.0:
        raise ConfigInvalid(f"prob must be in (0, 1), got {prob}", field="prob")
    term = _sharpe_variance_term(sharpe, skew, kurtosis)
    if sharpe <= sharpe0:
        return math.inf
    return float(1.0 + term * (norm.ppf(prob) / (sharpe - sharpe0)) ** 2)


def moments(returns: np.ndarray) -> tuple[float, float, float]:
    """``(sharpe, skew, kurtosis)`` of a series by the module's conventions. A series whose variance is
    within rounding of 0 has Sharpe 0 and the normal shape (skew 0, kurtosis 3)."""
    r = as_series(returns, "returns")
    if r.shape[0] < 2:
        raise DataInvalid(f"returns need at least 2 bars, got {r.shape[0]}", field="returns")
    mean = float(r.mean())
    dev = r - mean
    m2 = float(np.mean(dev * dev))
    if m2 <= ZERO_VARIANCE_REL * float(np.mean(r * r)):
        return 0.0, 0.0, 3.0
    sharpe = mean / float(np.std(r, ddof=1))
    skew = float(np.mean(dev**3)) / m2**1.5
    kurtosis = float(np.mean(dev**4)) / m2**2
    return sharpe, skew, kurtosis


@dataclass(frozen=True)
class DeflatedSharpe:
    """The Deflated Sharpe ratio of the best of ``n_trials`` trials, with its inputs (per-bar figures)."""

    n_trials: int
    n_obs: int
    sharpe: float  # per bar
    sharpe_annual: float
    skew: float
    kurtosis: float  # non-excess
    var_trial_sharpe: float  # per bar², ddof=1
    sharpe0: float  # per bar: expected maximum of n_trials Sharpe ratios
    psr: float  # PSR against 0
    dsr: float  # PSR against sharpe0
    min_trl_bars: float  # against sharpe0 at MIN_TRL_PROB; inf when sharpe <= sharpe0
    min_trl_years: float
    bars_per_year: float

    def to_json(self) -> dict[str, Any]:
        return {
            "n_trials": self.n_trials, "n_obs": self.n_obs, "sharpe": json_float(self.sharpe),
            "sharpe_annual": json_float(self.sharpe_annual), "skew": json_float(self.skew),
            "kurtosis": json_float(self.kurtosis), "var_trial_sharpe": json_float(self.var_trial_sharpe),
            "sharpe0": json_float(self.sharpe0), "psr": json_float(self.psr), "dsr": json_float(self.dsr),
            "min_trl_bars": json_float(self.min_trl_bars), "min_trl_years": json_float(self.min_trl_years),
            "min_trl_prob": MIN_TRL_PROB, "bars_per_year": self.bars_per_year,
        }


def deflated_sharpe(best_returns: np.ndarray, trial_sharpes: np.ndarray, bars_per_year: float) -> DeflatedSharpe:
    """DSR, PSR(0) and MinTRL of the best trial (its per-bar ``best_returns``) among the trials whose per-bar
    Sharpe ratios are ``trial_sharpes`` (every trial, the best one included)."""
    if not (math.isfinite(bars_per_year) and bars_per_year > 0):
        raise ConfigInvalid(f"bars_per_year must be > 0, got {bars_per_year}", field="bars_per_year")
    trials = as_series(trial_sharpes, "trial_sharpes")
    if trials.shape[0] < 1:
        raise ConfigInvalid("deflated_sharpe needs at least one trial", field="trial_sharpes")
    sharpe, skew, kurtosis = moments(best_returns)
    n_obs = int(np.asarray(best_returns).shape[0])
    n_trials = int(trials.shape[0])
    var_trials = float(np.var(trials, ddof=1)) if n_trials > 1 else 0.0
    sharpe0 = expected_max_sharpe(n_trials, var_trials)
    min_trl = min_track_record_length(sharpe, sharpe0, skew, kurtosis)
    return DeflatedSharpe(
        n_trials=n_trials, n_obs=n_obs, sharpe=sharpe, sharpe_annual=sharpe * math.sqrt(bars_per_year),
        skew=skew, kurtosis=kurtosis, var_trial_sharpe=var_trials, sharpe0=sharpe0,
        psr=probabilistic_sharpe_ratio(sharpe, 0.0, n_obs, skew, kurtosis),
        dsr=probabilistic_sharpe_ratio(sharpe, sharpe0, n_obs, skew, kurtosis),
        min_trl_bars=min_trl, min_trl_years=min_trl / bars_per_year, bars_per_year=float(bars_per_year),
    )
