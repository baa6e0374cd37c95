"""Bootstrap confidence intervals for Sharpe and CAGR: HADJ-BB circular block bootstrap, or simple IID.

Statistics (the exact definitions of :mod:`alphaforge.metrics`)
    ``sharpe = mean(r) / std(r, ddof=1) * sqrt(bars_per_year)`` (0 when the variance is within rounding of 0,
    i.e. ``var <= 1e-14 * mean square``) and ``cagr = exp(sum(log1p(r)) * bars_per_year / n) - 1``.
    A trial needs only three sums over its resample — ``sum(r - c)``, ``sum((r - c)**2)`` (``c`` = the
    series mean, subtracted for accuracy) and ``sum(log1p(r))`` — plus a count of ruin bars (``r <= -1``,
    where ``log1p`` is ``-inf``: such a trial's CAGR is ``-1``). With one table of *block sums* per block
    length (from float64 prefix sums over the circularly extended series) a trial costs one gather per
    block: O(n / block) instead of the O(n) a materialized resample costs. A trial of ``k = ceil(n / b)``
    blocks takes ``k - 1`` full blocks and a last partial block of exactly ``n - (k - 1) * b`` bars, the
    same truncation as ``arch.bootstrap.CircularBlockBootstrap``. CAGR is capped at ``exp(88) - 1`` so that
    it stays finite in float32 (the database stores 4-byte REALs; ``metrics.cagr`` caps at ``exp(700)``, the
    two agree below the lower cap).

Block length (HADJ-BB, :func:`choose_block_length`)
    The rule is :func:`alphaforge.validation.block_length.optimal_block_length` (Politis & White 2004 with the
    Patton, Politis & White 2009 correction): it sees dependence at *any* lag up to ``ceil(sqrt(n)) + K_n``
    (a series correlated only at lag 5 gets a long block, not the IID fallback). The base block is its
    ``circular`` length (this is a circular block bootstrap) rounded to the nearest integer. Then:

    * ``n < 10`` (the cap ``L = min(50, n // 5)`` is below 2): fallback to simple, reason ``too_short``;
    * zero variance: fallback, ``zero_variance``;
    * the rule finds no dependence — its first run of ``K_n`` quiet lags starts at lag 1 (``m_hat == 1``:
      no autocorrelation outside its band ``2 sqrt(log10(n) / n)`` before it), or its circular block is
      below 1.5 bars: fallback, ``no_dependence``;
    * otherwise the block is ``round(circular)``, reason ``politis_white`` (``pw_cap`` when it exceeds the cap
      ``L``: a block is never longer than 50 bars nor than a fifth of the series).

    Finally a deterministic jitter ``j`` uniform in ``{-jitter..jitter}`` is added and the result clamped to
    ``[2, L]`` (never 1, which is the IID bootstrap the rule just rejected; never fewer than 5 blocks).
    The rule's output and inputs (``BlockLength.to_json()``: both block lengths, ``m_hat``, the lag window,
    ``K_n``, ``m_max``, ``b_max``, ``n_obs``, ``rule``) are recorded as ``block_rule`` in the payload.

Seeds (documented rule)
    ``seed`` is the run's ``bootstrap_seed`` (uint32). The jitter draw comes from
    ``hashing.rng_for(seed, "jitter")`` and the trials from ``hashing.rng_for(seed, "bootstrap")``. Each
    trial draws its ``k`` block starts with one ``Generator.integers(0, n, k, dtype=int32)`` call, in trial
    order, so the distribution does not depend on how trials are batched in memory.

Digests are ``sha256`` of the little-endian float32 bytes of the trial distribution in trial order (the raw
samples are never stored). CI endpoints are linear-interpolation percentiles, rounded to float32 (rounding is
monotone, so ``low <= high`` survives the database's 4-byte REAL).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from alphaforge.config import BootstrapConfig
from alphaforge.enums import BootstrapMethod
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import UINT32, rng_for, sha256_hex
from alphaforge.validation.block_length import optimal_block_length

MAX_BLOCK = 50
MIN_BLOCKS = 5
#: The rule's circular block length below which it has found no dependence (rounds to 1: the IID bootstrap).
MIN_DEPENDENT_BLOCK = 1.5
CAGR_LOG_CAP = 88.0
#: Gathered block records per batch (32 bytes each, ~8 MiB); the index and record buffers are reused.
_BATCH_RECORDS = 1 << 18

_RECORD = np.dtype((np.void, 32))  # (sum x, sum x^2, sum log1p r, ruin count) as 4 float64


@dataclass(frozen=True)
class BootstrapResult:
    """CI endpoints (float32-representable) plus the method metadata of the validation table."""

    method: str
    block_length: int | None
    jitter: int | None
    fallback: bool
    n: int
    ci: float
    sharpe_low: float | None
    sharpe_high: float | None
    cagr_low: float | None
    cagr_high: float | None
    sharpe_digest: str | None
    cagr_digest: str | None
    reason: str
    block_rule: dict[str, Any] | None = None  # the block-length rule's record (BlockLength.to_json())

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation ``rho_0..rho_max_lag`` (demeaned, biased), by FFT in O(n log n)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    xc = x - x.mean()
    nfft = 1 << int(2 * n - 1).bit_length()
    spec = np.fft.rfft(xc, nfft)
    acov = np.fft.irfft(spec.real**2 + spec.imag**2, nfft)[: max_lag + 1]
    if acov[0] <= 0:
        return np.zeros(max_lag + 1)
    return np.asarray(acov / acov[0], dtype=np.float64)


def block_choice(returns: np.ndarray, *, jitter: int,
                 rng: np.random.Generator) -> tuple[int | None, str, dict[str, Any] | None]:
    """:func:`choose_block_length` plus the rule's record (``None`` when the rule was not applied)."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.shape[0]
    lags = min(MAX_BLOCK, n // MIN_BLOCKS)
    if lags < 2:
        return None, f"too_short: n={n} < {2 * MIN_BLOCKS} bars", None
    if np.ptp(r) == 0:
        return None, "zero_variance: all returns are equal", None
    rule = optimal_block_length(r)
    record = rule.to_json()
    if rule.m_hat == 1 or rule.circular < MIN_DEPENDENT_BLOCK:
        return None, (f"no_dependence: {rule.rule} finds lags 1..{rule.k_n} inside its band (m_hat = "
                      f"{rule.m_hat}) or a circular block {rule.circular:.3f} < {MIN_DEPENDENT_BLOCK}"), record
    base = int(round(rule.circular))
    if base > lags:
        why = f"pw_cap: {rule.rule} circular block {rule.circular:.3f} capped at {lags}"
        base = lags
    else:
        why = f"politis_white: {rule.rule} circular block {rule.circular:.3f} -> {base}"
    step = int(rng.integers(-jitter, jitter + 1)) if jitter > 0 else 0
    block = int(min(max(base + step, 2), lags))
    return block, f"{why}; jitter {step:+d} -> block {block}", record


def choose_block_length(returns: np.ndarray, *, jitter: int, rng: np.random.Generator) -> tuple[int | None, str]:
    """The HADJ-BB block length (``None`` = fall back to simple) and the reason (see module docstring)."""
    block, reason, _ = block_choice(returns, jitter=jitter, rng=rng)
    return block, reason


def _check_returns(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise DataInvalid(f"bootstrap returns must be 1-D, got shape {r.shape}")
    if r.shape[0] < 2:
        raise DataInvalid(f"bootstrap needs at least 2 returns, got {r.shape[0]}")
    if r.shape[0] >= 2**31:
        raise DataInvalid(f"bootstrap supports fewer than 2**31 returns, got {r.shape[0]}")
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise DataInvalid(f"bootstrap returns must be finite: bar {int(bad[0])} is {r[bad[0]]}")
    return r


class BlockSums:
    """Block-sum tables of one series for one block length; evaluates trials from their block starts."""

    def __init__(self, returns: np.ndarray, block_length: int, bars_per_year: float) -> None:
        r = _check_returns(returns)
        n = r.shape[0]
        if not 1 <= block_length <= n:
            raise ConfigInvalid(f"block_length must be in [1, n={n}], got {block_length}")
        self.n, self.block = n, int(block_length)
        self.n_blocks = -(-n // self.block)
        self.last = n - (self.n_blocks - 1) * self.block  # length of the last (possibly partial) block
        self.sqrt_bpy = math.sqrt(bars_per_year)
        self.bpy = float(bars_per_year)
        self.center = float(r.mean())
        ruin = r <= -1.0
        cols = np.empty((4, n), dtype=np.float64)
        cols[0] = r - self.center
        cols[1] = cols[0] ** 2
        cols[2] = np.log1p(np.where(ruin, 0.0, r))
        cols[3] = ruin
        tables = [self._window_sums(cols, self.block)]
        if self.last != self.block:
            tables.append(self._window_sums(cols, self.last))
        tables.append(np.zeros((4, 1)))  # a zero record: padding for the blocked reduction
        self.table = np.ascontiguousarray(np.concatenate(tables, axis=1).T).view(_RECORD).ravel()
        self.zero_index = self.table.shape[0] - 1
        # blocked reduction width: per trial, records are summed as (k_pad / w, 4 w) then (w, 4)
        k = self.n_blocks
        self.width = 64 if k >= 4096 else 8 if k >= 64 else 1
        self.k_pad = -(-k // self.width) * self.width

    @staticmethod
    def _window_sums(cols: np.ndarray, length: int) -> np.ndarray:
        """``W[:, s] = sum(cols[:, s:s+length])`` circularly, for ``s`` in ``0..n-1``."""
        if length == 1:
            return cols
        n = cols.shape[1]
        ext = np.concatenate([cols, cols[:, :length]], axis=1)
        prefix = np.zeros((4, n + length + 1))
        np.cumsum(ext, axis=1, out=prefix[:, 1:])
        return np.asarray(prefix[:, length : length + n] - prefix[:, :n])

    def index_matrix(self, starts: np.ndarray) -> np.ndarray:
        """Table indices ``(trials, k_pad)`` for block starts ``(trials, k)`` (last block = partial table)."""
        t, k = starts.shape
        idx = np.full((t, self.k_pad), self.zero_index, dtype=np.intp)
        idx[:, :k] = starts
        if self.last != self.block:
            idx[:, k - 1] += self.n
        return idx

    def _sums(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Per-trial ``(sum x, sum x^2, sum log1p r, ruin count)`` ``(trials, 4)`` from table indices."""
        t = idx.shape[0]
        rec = np.take(self.table, idx, mode="clip", out=out).view(np.float64)
        part = rec.reshape(t, self.k_pad // self.width, 4 * self.width).sum(axis=1)
        return np.asarray(part.reshape(t, self.width, 4).sum(axis=1))

    def sums(self, starts: np.ndarray) -> np.ndarray:
        """Per-trial ``(sum x, sum x^2, sum log1p r, ruin count)`` for block starts ``(trials, k)``."""
        return self._sums(self.index_matrix(np.atleast_2d(starts)))

    def _statistics(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        s1, s2, sl, ruined = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        mean = self.center + s1 / n
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
        std = np.sqrt(var)
        # a variance within rounding of 0 (relative to the mean square) is 0, as in metrics.sharpe_from_sums
        flat = var <= 1e-14 * (mean * mean + var)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(flat, 0.0, mean / std * self.sqrt_bpy)
        growth = np.minimum(sl * self.bpy / n, CAGR_LOG_CAP)
        cagr = np.where(ruined > 0, -1.0, np.expm1(growth))
        return sharpe, cagr

    def statistics(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sharpe and CAGR of each trial given its block starts ``(trials, k)``."""
        return self._statistics(self.sums(starts))

    def _per_batch(self, n_trials: int) -> int:
        return max(1, min(n_trials, _BATCH_RECORDS // self.k_pad))

    def draw_starts(self, rng: np.random.Generator, n_trials: int) -> Iterator[np.ndarray]:
        """Block starts in batches, drawn exactly as :meth:`run` draws them (one ``integers`` call a trial)."""
        per_batch, done = self._per_batch(n_trials), 0
        while done < n_trials:
            t = min(per_batch, n_trials - done)
            starts = np.empty((t, self.n_blocks), dtype=np.int32)
            for i in range(t):
                starts[i] = rng.integers(0, self.n, size=self.n_blocks, dtype=np.int32)
            done += t
            yield starts

    def run(self, rng: np.random.Generator, n_trials: int) -> tuple[np.ndarray, np.ndarray]:
        """``n_trials`` Sharpe and CAGR draws; index and record buffers are reused across batches."""
        k, per_batch = self.n_blocks, self._per_batch(n_trials)
        idx = np.full((per_batch, self.k_pad), self.zero_index, dtype=np.intp)
        rec = np.empty((per_batch, self.k_pad), dtype=_RECORD)
        sharpe, cagr = np.empty(n_trials), np.empty(n_trials)
        done = 0
        while done < n_trials:
            t = min(per_batch, n_trials - done)
            for i in range(t):
                idx[i, :k] = rng.integers(0, self.n, size=k, dtype=np.int32)
            if self.last != self.block:
                idx[:t, k - 1] += self.n
            s, c = self._statistics(self._sums(idx[:t], out=rec[:t]))
            sharpe[done : done + t], cagr[done : done + t] = s, c
            done += t
        return sharpe, cagr


def resample_indices(starts: np.ndarray, n: int, block_length: int) -> np.ndarray:
    """The explicit circular-block resample indices (length ``n``) of one trial's block starts."""
    idx = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(block_length)).ravel()[:n]
    return np.asarray(idx % n)


def bootstrap_distribution(
    returns: np.ndarray, *, block_length: int, n: int, seed: int, bars_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """The Sharpe and CAGR trial distributions (block 1 = the simple IID bootstrap)."""
    sums = BlockSums(returns, block_length, bars_per_year)
    return sums.run(rng_for(_check_seed(seed), "bootstrap"), n)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < UINT32:
        raise ConfigInvalid(f"bootstrap seed must be a uint32, got {seed!r}")
    return int(seed)


def _digest(samples: np.ndarray) -> str:
    return sha256_hex(np.ascontiguousarray(samples, dtype="<f4").tobytes())


def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    alpha = 1.0 - ci
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(np.float32(low)), float(np.float32(high))


def bootstrap_ci(returns: np.ndarray, config: BootstrapConfig, *, seed: int,
                 bars_per_year: float) -> BootstrapResult:
    """Percentile CIs for Sharpe and CAGR of ``returns`` (see the module docstring for every rule).

    ``config`` is the validated ``[validation.bootstrap]`` section (:func:`alphaforge.config.load_config`
    checks its values). ``config.n == 0`` disables the trials: the method metadata is chosen as usual, the
    CIs and digests are ``None``.
    """
    r = _check_returns(returns)
    n, method, ci, jitter = config.n, config.method, config.ci, config.jitter
    if not (math.isfinite(bars_per_year) and bars_per_year > 0):
        raise ConfigInvalid(f"bars_per_year must be finite and > 0, got {bars_per_year!r}")
    seed = _check_seed(seed)
    block: int | None = None
    rule: dict[str, Any] | None = None
    if method == BootstrapMethod.HADJ_BB:
        block, reason, rule = block_choice(r, jitter=int(jitter), rng=rng_for(seed, "jitter"))
    else:
        reason = f"configured: {BootstrapMethod.SIMPLE}"
    fallback = method == BootstrapMethod.HADJ_BB and block is None
    if fallback:
        reason = f"fallback to simple: {reason}"
    used = (BootstrapMethod.HADJ_BB if block is not None else BootstrapMethod.SIMPLE).value
    meta: dict[str, Any] = {"method": used, "block_length": block, "fallback": fallback, "n": int(n),
                            "ci": float(ci), "jitter": int(jitter) if block is not None else None,
                            "block_rule": rule}
    if n == 0:  # disabled: the method metadata is still chosen and recorded, no trials, no CIs
        return BootstrapResult(**meta, sharpe_low=None, sharpe_high=None, cagr_low=None, cagr_high=None,
                               sharpe_digest=None, cagr_digest=None, reason=f"{reason}; disabled (n = 0)")
    sharpe, cagr = bootstrap_distribution(r, block_length=block or 1, n=int(n), seed=seed,
                                          bars_per_year=float(bars_per_year))
    s_low, s_high = _interval(sharpe, float(ci))
    c_low, c_high = _interval(cagr, float(ci))
    return BootstrapResult(**meta, sharpe_low=s_low, sharpe_high=s_high, cagr_low=c_low, cagr_high=c_high,
                           sharpe_digest=_digest(sharpe), cagr_digest=_digest(cagr), reason=reason)
