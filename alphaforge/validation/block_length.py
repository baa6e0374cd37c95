"""Data-driven block length for dependent bootstraps: Politis & White (2004) with the Patton, Politis & White
(2009) correction, the rule ``arch.bootstrap.optimal_block_length`` implements (and the reference the tests
check it against, to rounding).

The rule, for a series ``x`` of ``n`` observations (``eps = x - mean(x)``):

* ``gamma_k = sum(eps[k:] * eps[:n-k]) / n``, the biased sample autocovariance at lag ``k``;
* ``rho_k = |sum(eps[k:] * eps[:n-k])| / sqrt(v1_k * v2_k)`` with ``v1_k = sum(eps[k+1:]**2)`` and
  ``v2_k = sum(eps[:n-k-1]**2)`` (arch's normalisation; ``rho_0`` is about 1, so the search below never
  starts at lag 0);
* ``K_n = max(5, floor(log10(n)))`` consecutive lags must fall inside the band ``2 * sqrt(log10(n) / n)``;
  ``m_hat`` is the first lag at which such a run of ``K_n`` quiet lags starts, searched up to
  ``m_max = ceil(sqrt(n)) + K_n``. This sees dependence at *any* lag up to ``m_max``: a series correlated only at
  lag 5 has quiet lags 1..4 but not a run of 5 before lag 6;
* ``M = min(2 * max(m_hat, 1), m_max)`` (``m_max`` when no run is found), the flat-top lag window
  ``h(t) = min(1, 2 (1 - |t|))``, ``G = sum_{k=1..M} 2 h(k/M) k gamma_k`` and
  ``sigma2 = gamma_0 + sum_{k=1..M} 2 h(k/M) gamma_k`` (the long-run variance);
* ``b = (2 G**2 / (c * sigma2**2)) ** (1/3) * n ** (1/3)`` with ``c = 2`` for the stationary and ``4/3`` for the
  circular bootstrap, capped at ``b_max = ceil(min(3 sqrt(n), n / 3))``.

A series with no dependence (or a variance within rounding of 0) has ``G`` near 0 and so a block length near 1: the caller decides when that means
"no dependence" (the bootstrap falls back to the IID resample below 1.5 bars).

The autocovariances come from one FFT (O(n log n)) instead of ``m_max`` dot products; the two agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from alphaforge.errors import DataInvalid

RULE = "politis_white_2004_ppw_2009"
#: The fewest observations the rule is applied to (below, every lag window would be a large share of the data).
MIN_OBS = 10
#: A series whose variance is within rounding of 0 (``var <= 1e-14 * mean square``, the rule of
#: :mod:`alphaforge.metrics`) has no dependence to measure: block length 1.
ZERO_VARIANCE_REL = 1e-14


@dataclass(frozen=True)
class BlockLength:
    """The rule's block lengths and the inputs that produced them (recorded in the validation payload)."""

    stationary: float
    circular: float
    m_hat: int | None  # first lag of K_n quiet lags; None when none was found up to m_max
    lag_window: int  # M
    k_n: int
    m_max: int
    b_max: int
    n_obs: int
    rule: str = RULE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _lagged_products(eps: np.ndarray, max_lag: int) -> np.ndarray:
    """``sum(eps[k:] * eps[:n-k])`` for ``k = 0..max_lag`` from one zero-padded real FFT."""
    n = eps.shape[0]
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(eps, size)
    full = np.fft.irfft(spectrum * np.conj(spectrum), size)
    return np.asarray(full[: max_lag + 1], dtype=np.float64)


def optimal_block_length(x: np.ndarray) -> BlockLength:
    """The Politis–White block lengths of the one-dimensional series ``x`` (see the module docstring)."""
    series = np.asarray(x, dtype=np.float64)
    if series.ndim != 1:
        raise DataInvalid(f"optimal_block_length needs a one-dimensional series, got shape {series.shape}")
    n = series.shape[0]
    if n < MIN_OBS:
        raise DataInvalid(f"optimal_block_length needs at least {MIN_OBS} observations, got {n}")
    if not np.all(np.isfinite(series)):
        raise DataInvalid("optimal_block_length needs finite values")
    eps = series - series.mean()
    b_max = int(math.ceil(min(3.0 * math.sqrt(n), n / 3.0)))
    k_n = max(5, int(math.log10(n)))
    m_max = int(math.ceil(math.sqrt(n))) + k_n
    products = _lagged_products(eps, m_max)
    squares = np.concatenate(([0.0], np.cumsum(eps * eps)))  # squares[j] = sum(eps[:j]**2)
    lags = np.arange(m_max + 1)
    v1 = squares[n] - squares[np.minimum(lags + 1, n)]
    v2 = squares[np.maximum(n - lags - 1, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.abs(products) / np.sqrt(v1 * v2)
    band = 2.0 * math.sqrt(math.log10(n) / n)
    quiet = rho < band  # NaN (zero variance) compares False: never quiet
    m_hat: int | None = None
    for start in range(0, m_max - k_n + 1):
        if quiet[start:start + k_n].all():
            m_hat = start
            break
    lag_window = min(2 * max(m_hat, 1), m_max) if m_hat is not None else m_max
    gamma = products / n
    k = np.arange(1, lag_window + 1)
    t = k / lag_window
    weight = np.where(t <= 0.5, 1.0, 2.0 * (1.0 - t))
    g = float(np.sum(2.0 * weight * k * gamma[1:lag_window + 1]))
    long_run = float(gamma[0] + np.sum(2.0 * weight * gamma[1:lag_window + 1]))
    negligible_variance = gamma[0] <= ZERO_VARIANCE_REL * float(np.mean(series * series))
    if negligible_variance or long_run <= 0.0 or not math.isfinite(long_run):
        stationary = circular = 1.0
    else:
        stationary = ((2.0 * g * g) / (2.0 * long_run * long_run)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
        circular = ((2.0 * g * g) / (4.0 / 3.0 * long_run * long_run)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return BlockLength(
        stationary=float(min(stationary, b_max)), circular=float(min(circular, b_max)), m_hat=m_hat,
        lag_window=lag_window, k_n=k_n, m_max=m_max, b_max=b_max, n_obs=n,
    )
