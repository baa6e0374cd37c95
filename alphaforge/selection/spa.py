"""Hansen's SPA test, White's Reality Check and Romano–Wolf's StepM with a stationary bootstrap.

References: White (2000), "A reality check for data snooping", Econometrica 68(5); Hansen (2005), "A test for
superior predictive ability", JBES 23(4); Romano & Wolf (2005), "Stepwise multiple testing as formalized data
snooping", Econometrica 73(4); Politis & Romano (1994), "The stationary bootstrap", JASA 89(428).

Inputs are **returns** (higher is better): ``benchmark`` (``T``) and ``candidates`` (``T x N``). The
differentials are ``d[t, k] = candidates[t, k] - benchmark[t]`` — exactly ``arch``'s ``benchmark_loss -
model_loss`` with ``loss = -return``. ``dbar = mean(d, axis=0)``.

Bootstrap (:func:`stationary_bootstrap_indices`)
    ``rng = numpy.random.default_rng(seed)``; for each repetition, in order: ``start = rng.integers(T, size=T)``
    then ``u = rng.random(T)``; bar 0 starts a block at ``start[0]``, and bar ``t > 0`` starts a new block at
    ``start[t]`` when ``u[t] <= 1 / block_length`` and otherwise continues the previous one (``index + 1``,
    wrapping from ``T - 1`` to 0). These are exactly the draws of ``arch.bootstrap.StationaryBootstrap(
    block_length, x, seed=seed)``, so the same seed gives the same indices as ``arch``. A repetition's means
    ``dbar*`` are computed as ``counts @ d / T`` (how often each bar was drawn), not from a gathered resample.

Variance (``omega_k**2``, the studentization and the "consistent" threshold)
    The stationary-bootstrap kernel estimator of Politis & Romano that ``arch`` uses:
    ``omega**2 = g_0 + 2 * sum_{i=1}^{T-1} kappa_i * g_i`` with ``g_i = sum(e[:T-i] * e[i:]) / T`` (``e`` the
    demeaned differential) and ``kappa_i = (1 - i/T) * (1 - p)**i + (i/T) * (1 - p)**(T - i)``, ``p = 1 /
    block_length``; the lagged products come from one FFT. A differential whose ``omega**2`` is within rounding
    of 0 has ``t = 0`` in the studentized statistic.

Candidates identical to the benchmark (``d == 0`` on every bar, e.g. an always-long configuration against
buy-and-hold) carry no evidence and are **left out** of SPA, RC and StepM (``n_identical``); ``arch`` keeps them,
and with every candidate identical its strict ``>`` gives p = 0, which would read as "significant": here every
p-value is 1 and StepM is empty.

Statistics and p-values (per repetition ``b``)
    ``t_k = dbar_k / omega_k`` when studentized (Hansen's SPA, the default), ``t_k = dbar_k`` otherwise (the
    ``sqrt(T)`` factor cancels). Recentring means: *upper* ``mu = dbar`` (every model is taken as on the
    boundary of the null); *consistent* ``mu = dbar`` where ``dbar_k >= -omega_k * sqrt(2 log log T / T)``
    and 0 elsewhere; *lower* ``mu = max(dbar, 0)``. ``T* = max_k (dbar*_k - mu_k) / omega_k`` and each
    p-value is the share of repetitions with ``T* > max_k t_k``. This is ``arch.bootstrap.SPA``'s computation
    (its p-values are those of our ``studentize=False``; ``arch`` 8 computes the variance but does not divide by
    it, so our studentized p-values equal ``arch``'s on the differentials pre-divided by ``omega``). Like
    ``arch`` the statistic is not floored at 0 (Hansen's ``max(., 0)``); the two differ only when every
    candidate is worse than the benchmark on average, where both p-values are large.

    **Reality Check** (White 2000) = the non-studentized *upper* p-value (``t_k = dbar_k``, ``mu = dbar``),
    computed from the same repetitions.

StepM (Romano–Wolf, as ``arch.bootstrap.StepM``)
    With the *consistent* recentring and the same studentization: ``c`` = the ``1 - alpha`` percentile
    (``numpy.percentile``, linear) of ``max_{k active} (dbar*_k - mu_k) / omega_k`` over the repetitions; every
    active ``k`` with ``t_k > c`` is significant and leaves the active set; repeat until a step adds none or
    none is left. ``significant`` lists the column indices, ascending.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.selection._arrays import ZERO_VARIANCE_REL, as_matrix, as_series, json_float

DEFAULT_REPS = 1000
DEFAULT_ALPHA = 0.05
#: Repetitions whose indices are held at once: at most ``CHUNK_REPS``, and at most ``CHUNK_CELLS / T`` (bounds
#: memory to a few ``chunk x T`` arrays of 8-byte cells, about 16 MB each).
CHUNK_REPS = 256
CHUNK_CELLS = 1 << 21
UINT32 = 2**32


def _check_bootstrap(n_obs: int, reps: int, block_length: float, seed: int) -> None:
    if n_obs < 2:
        raise ConfigInvalid(f"the bootstrap needs at least 2 observations, got {n_obs}", field="n_obs")
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ConfigInvalid(f"reps must be a positive integer, got {reps!r}", field="reps")
    if not (isinstance(block_length, int | float | np.integer | np.floating) and math.isfinite(block_length)
            and block_length >= 1.0):
        raise ConfigInvalid(f"block_length must be a finite number >= 1, got {block_length!r}",
                            field="block_length")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < UINT32:
        raise ConfigInvalid(f"seed must be an integer in [0, 2**32), got {seed!r}", field="seed")


def _chunk_reps(n_obs: int) -> int:
    return max(1, min(CHUNK_REPS, CHUNK_CELLS // max(n_obs, 1)))


def iter_stationary_bootstrap_indices(n_obs: int, reps: int, block_length: float, seed: int,
                                      chunk_reps: int | None = None) -> Iterator[np.ndarray]:
    """The repetitions of :func:`stationary_bootstrap_indices` in ``chunk x n_obs`` int64 chunks (the draws do
    not depend on the chunking)."""
    _check_bootstrap(n_obs, reps, block_length, seed)
    chunk_reps = _chunk_reps(n_obs) if chunk_reps is None else max(1, int(chunk_reps))
    rng = np.random.default_rng(int(seed))
    p = 1.0 / float(block_length)
    pos = np.arange(n_obs)
    for start in range(0, reps, chunk_reps):
        count = min(chunk_reps, reps - start)
        starts = np.empty((count, n_obs), dtype=np.int64)
        uniforms = np.empty((count, n_obs))
        for row in range(count):  # arch's draw order: the starts, then the uniforms, per repetition
            starts[row] = rng.integers(n_obs, size=n_obs, dtype=np.int64)
            uniforms[row] = rng.random(n_obs)
        new_block = uniforms <= p
        new_block[:, 0] = True
        block_start = np.maximum.accumulate(np.where(new_block, pos, 0), axis=1)
        idx = np.take_along_axis(starts, block_start, axis=1)
        idx += pos - block_start  # < 2 * n_obs: one wrap at most
        idx[idx >= n_obs] -= n_obs
        yield idx


def stationary_bootstrap_indices(n_obs: int, reps: int, block_length: float, seed: int) -> np.ndarray:
    """``reps x n_obs`` stationary-bootstrap indices (mean block ``block_length``; see the module docstring)."""
    return np.concatenate(list(iter_stationary_bootstrap_indices(n_obs, reps, block_length, seed)), axis=0)


def kernel_variance(diff: np.ndarray, block_length: float) -> np.ndarray:
    """``omega**2`` of each column of ``diff`` (``T x N``): the stationary-bootstrap kernel estimator."""
    n = diff.shape[0]
    dev = np.ascontiguousarray((diff - diff.mean(axis=0)).T)  # N x T: each FFT over contiguous memory
    size = scipy.fft.next_fast_len(2 * n - 1, real=True)
    spectrum = scipy.fft.rfft(dev, size, axis=1)
    lagged = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, size, axis=1)[:, :n] / n  # g_0 .. g_{T-1}
    lag = np.arange(1, n, dtype=np.float64)
    q = 1.0 - 1.0 / float(block_length)
    kappa = (1.0 - lag / n) * q**lag + (lag / n) * q ** (n - lag)
    return np.asarray(lagged[:, 0] + 2.0 * (lagged[:, 1:] @ kappa), dtype=np.float64)


@dataclass(frozen=True)
class SPA:
    """SPA p-values (Hansen), the Reality Check p-value (White) and the test's settings."""

    pvalue_lower: float
    pvalue_consistent: float
    pvalue_upper: float
    reality_check_pvalue: float
    n_models: int
    n_obs: int
    reps: int
    block_length: float
    studentized: bool
    seed: int | None  # None when the caller passed the indices
    n_identical: int = 0  # candidates identical to the benchmark on every bar (left out of the test)

    def to_json(self) -> dict[str, Any]:
        return {"pvalue_lower": self.pvalue_lower, "pvalue_consistent": self.pvalue_consistent,
                "pvalue_upper": self.pvalue_upper, "reality_check_pvalue": self.reality_check_pvalue,
                "n_models": self.n_models, "n_obs": self.n_obs, "reps": self.reps,
                "block_length": json_float(self.block_length), "studentized": self.studentized, "seed": self.seed,
                "n_identical_to_benchmark": self.n_identical}


@dataclass(frozen=True)
class StepM:
    """The Romano–Wolf StepM set: candidate column indices that beat the benchmark at family-wise level alpha."""

    alpha: float
    significant: list[int]
    n_steps: int
    studentized: bool

    def to_json(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "significant": list(self.significant), "n_steps": self.n_steps,
                "studentized": self.studentized}


def _inputs(benchmark: Any, candidates: Any) -> np.ndarray:
    bench = as_series(benchmark, "benchmark")
    cand = as_matrix(candidates, "candidates")
    if cand.shape[0] != bench.shape[0]:
        raise DataInvalid(f"candidates have {cand.shape[0]} rows but the benchmark has {bench.shape[0]}",
                          field="candidates")
    if cand.shape[1] < 1:
        raise ConfigInvalid("SPA needs at least one candidate", field="candidates")
    return cand - bench[:, None]


def _bootstrap_means(diff: np.ndarray, reps: int, block_length: float, seed: int,
                     indices: np.ndarray | None) -> np.ndarray:
    """``reps x N`` bootstrap means ``dbar*`` (from the given indices, or drawn from ``seed``)."""
    n = diff.shape[0]
    if indices is not None:
        idx = np.asarray(indices)
        if idx.ndim != 2 or idx.shape[1] != n or not np.issubdtype(idx.dtype, np.integer) or idx.size == 0:
            raise ConfigInvalid(f"indices must be a non-empty integer reps x {n} array, got {idx.shape}",
                                field="indices")
        if idx.min() < 0 or idx.max() >= n:
            raise ConfigInvalid(f"indices must lie in [0, {n})", field="indices")
        step = _chunk_reps(n)
        chunks: Iterator[np.ndarray] = (idx[i:i + step] for i in range(0, idx.shape[0], step))
    else:
        chunks = iter_stationary_bootstrap_indices(n, reps, block_length, seed)
    out = []
    for chunk in chunks:
        rows = chunk.shape[0]
        flat = (chunk + (np.arange(rows, dtype=np.int64) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)
        out.append(counts @ diff / n)
    return np.concatenate(out, axis=0)


@dataclass(frozen=True)
class _Family:
    """Everything SPA and StepM derive from one bootstrap (only the ``reps x N`` means are held)."""

    boot: np.ndarray  # reps x N bootstrap means dbar*
    means: dict[str, np.ndarray]  # recentring mu: "lower" / "consistent" / "upper"
    scale: np.ndarray  # 1 / omega (0 for a zero-variance differential), or ones when not studentized
    t_obs: np.ndarray  # N, studentized or not
    dbar: np.ndarray

    @property
    def reps(self) -> int:
        return int(self.boot.shape[0])

    def centered(self, kind: str, columns: np.ndarray | None = None) -> np.ndarray:
        """``(dbar* - mu) / omega`` of the ``kind`` recentring, restricted to ``columns`` (a boolean mask)."""
        if columns is None:
            return (self.boot - self.means[kind]) * self.scale
        return (self.boot[:, columns] - self.means[kind][columns]) * self.scale[columns]


def _check_parameters(n_obs: int, reps: int, block_length: float, seed: int, indices: np.ndarray | None) -> None:
    if indices is None:
        _check_bootstrap(n_obs, reps, block_length, seed)
    elif not (isinstance(block_length, int | float | np.integer | np.floating) and math.isfinite(block_length)
              and block_length >= 1.0):
        raise ConfigInvalid(f"block_length must be a finite number >= 1, got {block_length!r}", field="block_length")


def _family(diff: np.ndarray, reps: int, block_length: float, seed: int, indices: np.ndarray | None,
            studentize: bool) -> _Family:
    n = diff.shape[0]
    dbar = diff.mean(axis=0)
    variance = kernel_variance(diff, block_length)
    zero = variance <= ZERO_VARIANCE_REL * np.mean(diff * diff, axis=0)
    omega = np.sqrt(np.where(zero, 1.0, variance))
    valid = dbar >= -omega * math.sqrt(2.0 * math.log(math.log(n)) / n) if n > math.e else np.ones_like(zero)
    means = {"lower": np.maximum(dbar, 0.0), "consistent": np.where(valid, dbar, 0.0), "upper": dbar}
    boot = _bootstrap_means(diff, reps, block_length, seed, indices)
    scale = np.where(zero, 0.0, 1.0 / omega) if studentize else np.ones_like(dbar)
    return _Family(boot=boot, means=means, scale=scale, t_obs=dbar * scale if studentize else dbar, dbar=dbar)


def _pvalue(centered: np.ndarray, t_obs: np.ndarray) -> float:
    return float(np.mean(centered.max(axis=1) > t_obs.max()))


def _spa(family: _Family | None, n_models: int, n_obs: int, reps: int, block_length: float, studentize: bool,
         seed: int | None) -> SPA:
    """The p-values; ``family`` None = every candidate identical to the benchmark: nothing beats it, p = 1."""
    if family is None:
        return SPA(pvalue_lower=1.0, pvalue_consistent=1.0, pvalue_upper=1.0, reality_check_pvalue=1.0,
                   n_models=n_models, n_obs=n_obs, reps=reps, block_length=float(block_length),
                   studentized=studentize, seed=seed, n_identical=n_models)
    return SPA(pvalue_lower=_pvalue(family.centered("lower"), family.t_obs),
               pvalue_consistent=_pvalue(family.centered("consistent"), family.t_obs),
               pvalue_upper=_pvalue(family.centered("upper"), family.t_obs),
               reality_check_pvalue=_pvalue(family.boot - family.dbar, family.dbar),
               n_models=n_models, n_obs=n_obs, reps=family.reps, block_length=float(block_length),
               studentized=studentize, seed=seed, n_identical=n_models - int(family.t_obs.shape[0]))


def _stepm(family: _Family, alpha: float, studentize: bool) -> StepM:
    active = np.ones(family.t_obs.shape[0], dtype=bool)
    significant: list[int] = []
    steps = 0
    while active.any():
        steps += 1
        critical = float(np.percentile(family.centered("consistent", active).max(axis=1), 100.0 * (1.0 - alpha)))
        new = np.flatnonzero(active & (family.t_obs > critical))
        if new.size == 0:
            break
        significant.extend(int(i) for i in new)
        active[new] = False
    return StepM(alpha=float(alpha), significant=sorted(significant), n_steps=steps, studentized=studentize)


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float | np.floating) and 0.0 < float(alpha) < 1.0):
        raise ConfigInvalid(f"alpha must be in (0, 1), got {alpha!r}", field="alpha")


def spa_and_stepm(benchmark: np.ndarray, candidates: np.ndarray, *, reps: int = DEFAULT_REPS, block_length: float,
                  seed: int, alpha: float = DEFAULT_ALPHA, indices: np.ndarray | None = None,
                  studentize: bool = True) -> tuple[SPA, StepM]:
    """SPA, Reality Check and StepM from one bootstrap (``indices``, when given, replace ``reps``/``seed``)."""
    _check_alpha(alpha)
    diff = _inputs(benchmark, candidates)
    n_obs, n_models = diff.shape
    _check_parameters(n_obs, reps, block_length, seed, indices)
    tested = np.flatnonzero(np.any(diff != 0.0, axis=0))  # candidates identical to the benchmark are left out
    shown_seed = None if indices is not None else int(seed)
    shown_reps = int(np.asarray(indices).shape[0]) if indices is not None else int(reps)
    if tested.size == 0:
        return (_spa(None, n_models, n_obs, shown_reps, block_length, studentize, shown_seed),
                StepM(alpha=float(alpha), significant=[], n_steps=0, studentized=studentize))
    family = _family(diff[:, tested], reps, block_length, seed, indices, studentize)
    spa = _spa(family, n_models, n_obs, shown_reps, block_length, studentize, shown_seed)
    step = _stepm(family, alpha, studentize)
    return spa, StepM(alpha=step.alpha, significant=[int(tested[i]) for i in step.significant],
                      n_steps=step.n_steps, studentized=studentize)


def superior_predictive_ability(benchmark: np.ndarray, candidates: np.ndarray, *, reps: int = DEFAULT_REPS,
                                block_length: float, seed: int, alpha: float = DEFAULT_ALPHA,
                                indices: np.ndarray | None = None, studentize: bool = True) -> SPA:
    """Hansen's SPA p-values and White's Reality Check p-value for ``candidates`` against ``benchmark``."""
    return spa_and_stepm(benchmark, candidates, reps=reps, block_length=block_length, seed=seed, alpha=alpha,
                         indices=indices, studentize=studentize)[0]


def stepm(benchmark: np.ndarray, candidates: np.ndarray, *, reps: int = DEFAULT_REPS, block_length: float,
          seed: int, alpha: float = DEFAULT_ALPHA, indices: np.ndarray | None = None,
          studentize: bool = True) -> StepM:
    """Romano–Wolf StepM: the candidates (column indices) that beat the benchmark at family-wise level alpha."""
    return spa_and_stepm(benchmark, candidates, reps=reps, block_length=block_length, seed=seed, alpha=alpha,
                         indices=indices, studentize=studentize)[1]
