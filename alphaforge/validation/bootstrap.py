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
    ``hashing.rng_for(seed, "jitter")``. The trials run in fixed chunks of ``CHUNK_TRIALS`` (8): chunk ``c``
    (trials ``8c .. 8c + 7``) draws from its own generator ``PCG64(SeedSequence(s, spawn_key=(c,)))`` with
    ``s = hashing.component_seed(seed, "bootstrap")`` (:func:`chunk_rng`), one
    ``Generator.integers(0, n, k)`` call per trial in trial order. So the distribution depends neither on how
    trials are batched in memory nor on how many threads evaluate the chunks. (Before methodology 2 every
    trial drew from the single generator ``rng_for(seed, "bootstrap")`` with ``dtype=int32``.)

Trials (documented rule, :meth:`BlockSums.run`)
    The full-block starts of a trial are ``k'`` (``k`` or ``k - 1`` when the last block is partial) uniform
    draws from ``0..n-1``, made table-chunk by table-chunk: the counts per slice of ``TABLE_CHUNK`` (32,768)
    starts come from one ``Generator.multinomial(k', sizes / n, size=trials)`` call for the chunk's trials,
    then, slice by slice, the offsets of all those trials inside the slice: 15 raw bits each (four per
    ``random_raw`` word, little-endian) for a full slice, ``Generator.integers(0, size, count)`` for the last,
    shorter one; last, when the last block is partial, one ``integers(0, n, trials)`` call for its starts.
    This is the same distribution as ``k'`` independent uniform draws; every gather stays inside one
    cache-sized slice of the table.

Sums (documented order, :func:`alphaforge.validation.resample.chunk_sums`; methodology bootstrap 3.0.0)
    A trial's three sums start at ``+0.0``. Table chunk by table chunk, in chunk order, the rows of the
    trial's starts in that chunk are summed sequentially in draw order from ``+0.0`` (``s = s + row``, plain
    IEEE float64 additions) and ``s`` is added to the trial's sums; last, the partial block's row is added.
    The IID path and the block path sum alike. The compiled kernel ``alphaforge.validation._resample`` and
    its numpy reference give the same bits, so no stored number depends on whether the kernel was built.
    (Before 3.0.0 the dense draws were counted and multiplied with the table by BLAS, the sparse ones summed
    pairwise by numpy: the same draws, other last bits.)

Digests are ``sha256`` of the little-endian float32 bytes of the trial distribution in trial order (the raw
samples are never stored). CI endpoints are linear-interpolation percentiles, rounded to float32 (rounding is
monotone, so ``low <= high`` survives the database's 4-byte REAL).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from alphaforge.config import BootstrapConfig
from alphaforge.enums import BootstrapMethod
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import UINT32, component_seed, rng_for, sha256_hex
from alphaforge.validation.block_length import optimal_block_length
from alphaforge.validation.fanout import fan_out
from alphaforge.validation.resample import COLS, chunk_sums, raw_words

MAX_BLOCK = 50
MIN_BLOCKS = 5
#: The rule's circular block length below which it has found no dependence (rounds to 1: the IID bootstrap).
MIN_DEPENDENT_BLOCK = 1.5
CAGR_LOG_CAP = 88.0
#: Trials per chunk: each chunk has its own generator (:func:`chunk_rng`), chunks run on worker threads.
CHUNK_TRIALS = 8
#: Block starts per table chunk (a power of two: a full chunk's offsets are 15 raw bits, exactly uniform;
#: its tables, 24 bytes a start, fit a core's L2 cache, so the random gathers stay in cache).
TABLE_CHUNK = 1 << 15


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
    """Block-sum tables of one series for one block length; evaluates trials from their block starts.

    Per block start ``s`` (``0..n-1``) the tables hold ``sum(r - c)``, ``sum((r - c)**2)`` and
    ``sum(log1p r)`` over the circular window of one full block — ``-inf`` for a window holding a ruin bar
    (``r <= -1``), so a trial holding one sums to ``-inf`` and its CAGR is ``-1`` — and the same for the
    partial last block when ``n`` is not a multiple of the block: one row of three float64 per start
    (24 bytes: one gather fetches the three sums).

    Trials (:meth:`run`) draw their full-block starts table-chunk by table-chunk (see "Trials" in the
    module docstring) so that every gather hits one cache-sized slice of the table, and sum them in the
    order of "Sums" (:func:`alphaforge.validation.resample.chunk_sums`).
    """

    def __init__(self, returns: np.ndarray, block_length: int, bars_per_year: float) -> None:
        r = _check_returns(returns)
        n = r.shape[0]
        if not 1 <= block_length <= n:
            raise ConfigInvalid(f"block_length must be in [1, n={n}], got {block_length}")
        self.n, self.block = n, int(block_length)
        self.n_blocks = -(-n // self.block)
        self.last = n - (self.n_blocks - 1) * self.block  # length of the last (possibly partial) block
        self.partial = self.last != self.block
        self.full_blocks = self.n_blocks - 1 if self.partial else self.n_blocks
        self.sqrt_bpy = math.sqrt(bars_per_year)
        self.bpy = float(bars_per_year)
        self.center = float(r.mean())
        ruin = r <= -1.0
        cols = np.empty((4, n), dtype=np.float64)
        cols[0] = r - self.center
        cols[1] = cols[0] ** 2
        cols[2] = np.log1p(np.where(ruin, 0.0, r))
        cols[3] = ruin
        #: rows ``(sum x, sum x^2, sum log1p r)`` per start of a full block and of the last block
        self.full = self._table(self._window_sums(cols, self.block))
        self.tail = self._table(self._window_sums(cols, self.last)) if self.partial else self.full
        self.chunks = -(-n // TABLE_CHUNK)
        self.chunk_p = np.minimum(TABLE_CHUNK, n - TABLE_CHUNK * np.arange(self.chunks)) / n

    @staticmethod
    def _table(w: np.ndarray) -> np.ndarray:
        """Rows ``(sum x, sum x^2, sum log1p r)`` ``(n, 3)`` per start; ``-inf`` log sum where the window holds
        a ruin bar."""
        table = np.empty((w.shape[1], COLS))
        table[:, 0], table[:, 1] = w[0], w[1]
        table[:, 2] = np.where(w[3] > 0, -np.inf, w[2])
        return table

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

    # -- explicit starts (reference path: tests, and the resample a trial stands for) -------------------

    def sums(self, starts: np.ndarray) -> np.ndarray:
        """Per-trial ``(sum x, sum x^2, sum log1p r)`` ``(trials, 3)`` for block starts ``(trials, k)``.

        The last column is the start of the last block (the partial one when ``n % block != 0``).
        """
        idx = np.array(starts, dtype=np.intp, ndmin=2)
        s = np.take(self.full, idx[:, : self.full_blocks], axis=0).sum(axis=1)
        if self.partial:
            s = s + np.take(self.tail, idx[:, -1], axis=0)
        return np.asarray(s)

    def statistics(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sharpe and CAGR of each trial given its block starts ``(trials, k)``."""
        return self._statistics(self.sums(starts))

    def _statistics(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        s1, s2, sl = s[:, 0], s[:, 1], s[:, 2]
        mean = self.center + s1 / n
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
        std = np.sqrt(var)
        # a variance within rounding of 0 (relative to the mean square) is 0, as in metrics.sharpe_from_sums
        flat = var <= 1e-14 * (mean * mean + var)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(flat, 0.0, mean / std * self.sqrt_bpy)
        growth = np.minimum(sl * self.bpy / n, CAGR_LOG_CAP)  # -inf (a ruin bar) -> expm1 = -1
        return sharpe, np.expm1(growth)

    # -- trials -------------------------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, t: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """The draws of ``t`` trials in their documented order: ``(chunk, counts per trial, offsets)``
        per table chunk (uint16 offsets), then ``(-1, ones, last-block starts)`` when the last block is partial.

        The raw words of the full table chunks follow each other in the stream, so they are drawn in one
        call (:func:`~alphaforge.validation.resample.raw_words`): the same words as one ``random_raw`` call
        per chunk.
        """
        counts = rng.multinomial(self.full_blocks, self.chunk_p, size=t)
        totals = counts.sum(axis=0)
        full = self.n // TABLE_CHUNK  # the chunks of exactly TABLE_CHUNK starts come first
        words = -(-totals[:full] // 4)
        raw = np.ascontiguousarray(raw_words(rng, int(words.sum())), dtype="<u8").view("<u2")
        at = 0
        for j in range(self.chunks):
            total = int(totals[j])
            if not total:
                continue
            if j < full:
                offsets = np.bitwise_and(raw[at : at + total], TABLE_CHUNK - 1)
                at += 4 * int(words[j])
            else:  # the shorter last chunk: size < 2**15, so uint16 holds the values unchanged
                offsets = rng.integers(0, self.n - j * TABLE_CHUNK, total).astype(np.uint16)
            yield j, np.ascontiguousarray(counts[:, j]), offsets
        if self.partial:
            yield -1, np.ones(t, dtype=np.int64), rng.integers(0, self.n, t)

    def draw_starts(self, rng: np.random.Generator, n_trials: int) -> np.ndarray:
        """The block starts ``(trials, k)`` :meth:`run` draws from ``rng`` (last column: the last block)."""
        rows: list[list[int]] = [[] for _ in range(n_trials)]
        for j, counts, offsets in self._draw(rng, n_trials):
            base = 0 if j < 0 else j * TABLE_CHUNK
            for i, part in enumerate(np.split(offsets.astype(np.intp) + base, np.cumsum(counts)[:-1])):
                rows[i].extend(part.tolist())
        return np.array(rows, dtype=np.intp).reshape(n_trials, self.n_blocks)

    def run(self, rng: np.random.Generator, n_trials: int) -> tuple[np.ndarray, np.ndarray]:
        """``n_trials`` Sharpe and CAGR draws from ``rng`` (the trials of one chunk, see :meth:`_draw`).

        Each table chunk's starts are summed by :func:`~alphaforge.validation.resample.chunk_sums` (the
        compiled kernel, or its bit-identical numpy reference), in the order of "Sums" (module docstring).
        """
        out = np.zeros((n_trials, COLS))
        for j, counts, offsets in self._draw(rng, n_trials):
            if j < 0:
                out += np.take(self.tail, offsets, axis=0)
            else:
                chunk_sums(self.full[j * TABLE_CHUNK : (j + 1) * TABLE_CHUNK], offsets, counts, out)
        return self._statistics(out)


def resample_indices(starts: np.ndarray, n: int, block_length: int) -> np.ndarray:
    """The explicit circular-block resample indices (length ``n``) of one trial's block starts."""
    idx = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(block_length)).ravel()[:n]
    return np.asarray(idx % n)


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """The generator of trial chunk ``chunk`` (trials ``chunk * CHUNK_TRIALS ..``): see "Seeds"."""
    root = component_seed(_check_seed(seed), "bootstrap")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(root, spawn_key=(chunk,))))


def bootstrap_workers(n_trials: int) -> int:
    """Threads evaluating trial chunks: ``$ALPHAFORGE_BOOTSTRAP_WORKERS`` if set, else 1 inside a worker
    process (a sweep's points run side by side instead), else the CPUs available to this process
    (:func:`~alphaforge.validation.fanout.fan_out`); never more than the number of chunks (the result does not
    depend on it)."""
    return max(1, min(fan_out("ALPHAFORGE_BOOTSTRAP_WORKERS"), -(-n_trials // CHUNK_TRIALS)))


def bootstrap_distribution(
    returns: np.ndarray, *, block_length: int, n: int, seed: int, bars_per_year: float,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Sharpe and CAGR trial distributions (block 1 = the simple IID bootstrap).

    Trials run in chunks of ``CHUNK_TRIALS``, each from its own generator (:func:`chunk_rng`), on
    ``workers`` threads (default :func:`bootstrap_workers`; numpy releases the GIL in the draws, gathers
    and sums). The distribution is the same for any number of workers.
    """
    sums = BlockSums(returns, block_length, bars_per_year)
    seed = _check_seed(seed)
    sharpe, cagr = np.empty(n), np.empty(n)

    def chunk(c: int) -> None:
        lo, hi = c * CHUNK_TRIALS, min(n, (c + 1) * CHUNK_TRIALS)
        sharpe[lo:hi], cagr[lo:hi] = sums.run(chunk_rng(seed, c), hi - lo)

    chunks = range(-(-n // CHUNK_TRIALS))
    workers = bootstrap_workers(n) if workers is None else max(1, int(workers))
    if workers == 1:
        for c in chunks:
            chunk(c)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(chunk, chunks))
    return sharpe, cagr


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
