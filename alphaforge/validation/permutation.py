"""Permutation test: does the strategy's rule beat the same bars in random order?

Null hypothesis: the rule has no edge over the bars' *order*. Under the null, shuffling the bars leaves the
distribution of the strategy statistic unchanged.

Permutation scheme (documented)
    Every bar ``t >= 1`` is described relative to the previous close ``c[t-1]`` by four log offsets
    ``log(o[t]/c[t-1])``, ``log(h[t]/c[t-1])``, ``log(l[t]/c[t-1])``, ``log(c[t]/c[t-1])`` plus its volume.
    One permutation shuffles these bar tuples *jointly* (bar 0 stays first and unchanged; timestamps stay in
    place) and rebuilds the prices from the first close: ``log c'[t] = log c[0] + cumsum(close offsets)``,
    then ``o'[t] = c'[t-1] * exp(open offset)`` and likewise high and low. Because a bar's four offsets move
    together, ``low <= open, close <= high`` holds in every permuted frame (exp and the float32 cast are
    monotone), gaps between bars are kept, and the close-to-close return distribution is exactly preserved
    — only its order changes. The strategy is then re-run (``backtest.strategy_returns``) on the permuted
    frame and the statistic (default ``sharpe``; ``cagr``) computed with :mod:`alphaforge.metrics`.

p-value: ``(1 + #{null >= observed}) / (1 + n)`` — never 0, in ``(0, 1]``. ``n == 0`` disables the test.
A null value within rounding of the observed one (``1e-10 * max(1, |observed|)``) counts as a tie, i.e. as
``>=`` (conservative: a rule whose statistic does not depend on bar order gets ``p = 1``, not noise).

Seed: ``seed`` is ``hashing.component_seed(seed_root, "permutation")``; the generator is
``np.random.default_rng(seed)`` — exactly ``hashing.rng_for(seed_root, "permutation")``. Permutation ``i`` is
the ``i``-th ``Generator.permutation(n - 1)`` call, so batching does not change the null distribution. The
price rebuild is vectorized over a batch of permutations; the strategy runs once per permutation, on only the
price columns it and the engine read (open and close, plus ``Strategy.prices`` and its indicators' inputs). The
gathers and the cumulative sum run in a compiled kernel when it is built (``_permute.c``: the same operations
as the numpy code, bit-identical; numpy's exp is kept, it defines the float32 prices). Large jobs
run on several processes (:func:`permutation_workers`): the parent still draws every permutation in order and
the results come back in order, so the null distribution is bit-identical to the serial one.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import forkserver
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaforge import metrics
from alphaforge.backtest.calendar import year_fractions
from alphaforge.backtest.engine import ExecutionParams, strategy_returns, trusted_returns
from alphaforge.backtest.strategies import PRICE_COLUMNS, PreparedStrategy, prepare_strategy
from alphaforge.enums import HeadlineMetric, values
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.hashing import UINT32, sha256_hex
from alphaforge.validation.fanout import fan_out
from alphaforge.validation.ordered_map import ordered_map
from alphaforge.validation.resample import pcg64_words

if TYPE_CHECKING:  # pandas only in annotations: a permutation worker never imports it (issue #13, memory)
    import pandas as pd

try:
    from alphaforge.validation import _permute
except ImportError:  # built optional=True (setup.py): without a compiler the numpy reference runs
    _permute = None  # type: ignore[assignment]

log = logging.getLogger("alphaforge.validation")
TIE_TOLERANCE = 1e-10
#: Permuted price values per batch (4 price columns x bars x permutations): small enough to stay in cache.
_BATCH_VALUES = 1 << 19
#: Bars per chunk of the compiled rebuild in :meth:`_Permuter.arrays`: a chunk's log prices and float32 prices
#: stay in cache between the kernel, numpy's exp and the widening (instead of a round trip to memory each).
_CHUNK_BARS = 65_536
#: Below this many bar evaluations (permutations x bars) the permutations run in this process.
PARALLEL_MIN_BAR_EVALS = 20_000_000


@dataclass(frozen=True)
class PermutationResult:
    pvalue: float
    observed: float
    n: int
    null_digest: str
    null_mean: float
    null_std: float
    statistic: str = HeadlineMetric.SHARPE.value

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def statistic_fn(name: str, bars_per_year: float) -> Callable[[np.ndarray], float]:
    """The statistic ``returns -> float`` named ``name`` (the definitions of :mod:`alphaforge.metrics`)."""
    if name == HeadlineMetric.SHARPE:
        return lambda r: float(metrics.sharpe(r, bars_per_year))
    if name == HeadlineMetric.CAGR:
        return lambda r: float(metrics.cagr(r, bars_per_year))
    raise ConfigInvalid(f"permutation statistic must be one of {values(HeadlineMetric)}, got {name!r}")


def permutation_pvalue(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + len(null))``; nulls within ``TIE_TOLERANCE`` (relative) are ties."""
    exceed = int(np.count_nonzero(null >= observed - TIE_TOLERANCE * max(1.0, abs(observed))))
    return (1.0 + exceed) / (1.0 + len(null))


def bar_offsets(frame: pd.DataFrame | Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """``(base log close, offsets)`` with offsets ``(4, n-1)``: open, high, low, close of bar t vs close t-1
    (each row contiguous). ``frame``: a frame or its columns (:func:`frame_columns`)."""
    cols = ("open", "high", "low", "close")
    missing = [c for c in cols if c not in frame]
    if missing:
        raise DataInvalid(f"permutation test needs OHLC columns; missing {missing}")
    prices = np.empty((4, len(frame["close"])))
    for j, c in enumerate(cols):
        prices[j] = np.asarray(frame[c], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(prices)
    if not np.isfinite(logp).all():  # the log of a price is finite exactly when the price is finite and > 0
        bad = np.argwhere(~(np.isfinite(prices) & (prices > 0)))
        col, row = bad[0]
        raise DataInvalid(f"permutation test needs finite positive prices: row {int(row)} column {cols[col]!r}")
    base = float(logp[3, 0])
    # the offsets in place (IEEE subtraction: the values of ``logp[:, 1:] - logp[3, :-1]``): the other columns
    # first, while the log closes are intact; numpy buffers the closes' own overlapping difference
    np.subtract(logp[:3, 1:], logp[3, :-1], out=logp[:3, 1:])
    np.subtract(logp[3, 1:], logp[3, :-1], out=logp[3, 1:])
    return base, logp[:, 1:]


def rebuild_prices(base: float, offsets: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Permuted float32 prices ``(4, batch, n)`` (open, high, low, close) for permutations ``(batch, n-1)``.

    The four offsets of a bar move together (the same permutation gathers each offset column). Log prices
    are accumulated in float64 and only the final ``exp`` is rounded to float32. Column 0 of open/high/low
    is set to the first close; the caller puts the given bar-0 prices there.
    """
    return _rebuild(base, tuple(np.ascontiguousarray(offsets[j]) for j in range(4)), perms)


def _rebuild(base: float, columns: tuple[np.ndarray, ...], perms: np.ndarray) -> np.ndarray:
    """:func:`rebuild_prices` with the offset columns already contiguous (one per price column)."""
    b, m = perms.shape
    log_close, others = np.empty((b, m + 1)), np.empty((b, 3, m))
    _log_prices(base, _offset_table(columns, (0, 1, 2)), perms, log_close, others)
    prices = np.empty((4, b, m + 1), dtype=np.float32)
    np.exp(log_close, out=prices[3])
    for j in range(3):
        np.exp(others[:, j], out=prices[j, :, 1:])
        prices[j, :, 0] = prices[3, :, 0]
    return prices


def _offset_table(columns: tuple[np.ndarray, ...], others: tuple[int, ...]) -> np.ndarray:
    """``(m, 1 + k)``: per original bar its close offset, then the offsets of the price columns ``others``.

    C-contiguous and starting on a 64-byte boundary: a row of 2 or 4 values then never straddles two cache
    lines, so the kernel's one prefetch per (random) row covers it."""
    sources = (columns[3], *(columns[j] for j in others))
    size = len(sources) * len(columns[3])
    buf = np.empty(size + 8)
    start = (-buf.ctypes.data % 64) // 8
    table = buf[start : start + size].reshape(len(columns[3]), len(sources))
    for j, column in enumerate(sources):
        table[:, j] = column
    return table


def _log_prices(base: float, table: np.ndarray, perms: np.ndarray, log_close: np.ndarray,
                others: np.ndarray) -> None:
    """The permuted log prices: ``log_close (batch, n)`` = ``base`` then ``base + cumsum(close offsets)``, and
    ``others (batch, k, n-1)`` = each other column's offset + the previous log close (``table``:
    :func:`_offset_table`). The compiled kernel, when built, runs the same operations in one pass per
    permutation (one random access per bar): bit-identical to the numpy below."""
    if _permute is not None:
        for i in range(perms.shape[0]):
            _permute.rebuild(table, perms[i], base, log_close[i], others[i])
        return
    log_close[:, 0] = base
    np.take(table[:, 0], perms, out=log_close[:, 1:])
    np.cumsum(log_close[:, 1:], axis=1, out=log_close[:, 1:])
    log_close[:, 1:] += base
    for j in range(others.shape[1]):
        work = np.take(table[:, 1 + j], perms)
        np.add(work, log_close[:, :-1], out=others[:, j])


def draw_permutation(rng: np.random.Generator, m: int) -> np.ndarray:
    """``rng.permutation(m)``: the same values, and the generator left where that call leaves it.

    For numpy's :class:`~numpy.random.PCG64` (``default_rng``'s) the compiled kernel draws it (the same 32-bit
    draws and swaps as numpy's Fisher-Yates, into an int32 array: about half numpy's time at 500k bars) and
    sets the generator's state after them; any other generator, or no kernel, calls ``rng.permutation``."""
    bg = rng.bit_generator
    if _permute is None or not hasattr(_permute, "permutation") or type(bg) is not np.random.PCG64 or m >= 2**31:
        return rng.permutation(m)
    state = bg.state
    out = np.empty(m, dtype=np.int32)
    hi, lo, has, held = _permute.permutation(*pcg64_words(state), int(state["has_uint32"]),
                                             int(state["uinteger"]), out)
    state["state"]["state"] = (hi << 64) | lo
    state["has_uint32"], state["uinteger"] = has, held
    bg.state = state
    return out


def _permutation_batches(rng: np.random.Generator, m: int, n: int, per_batch: int) -> Iterator[np.ndarray]:
    """The permutations ``(count, m)`` in order, ``per_batch`` at a time (the i-th is the i-th draw)."""
    done = 0
    while done < n:
        count = min(per_batch, n - done)
        if not m:
            yield np.zeros((count, 0), np.intp)
        elif count == 1:
            yield draw_permutation(rng, m)[None]
        else:
            yield np.vstack([draw_permutation(rng, m) for _ in range(count)])
        done += count


class _Permuter:
    """Builds the permuted frames (or just their columns) of one dataset for given permutation index arrays.

    ``frame``: the dataset's frame, or its columns as numpy arrays (:func:`frame_columns`: what a worker process
    is given, so that it never imports pandas); :meth:`frames` needs the frame."""

    def __init__(self, frame: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        self.frame = frame
        self.base, self.offsets = bar_offsets(frame)
        self.offset_columns = tuple(np.ascontiguousarray(self.offsets[j]) for j in range(4))
        self.first = [np.asarray(frame[c])[:1] for c in PRICE_COLUMNS]
        self.m = self.offsets.shape[1]
        self.volume = np.asarray(frame["volume"]) if "volume" in frame else None
        self.per_batch = max(1, _BATCH_VALUES // (4 * (self.m + 1)))
        self.ts = np.asarray(frame["ts"])  # a permutation keeps the calendar: only prices move
        self.year_fraction = year_fractions(self.ts)  # the engine's borrow clock, the same for every permutation
        self._tables: dict[tuple[int, ...], np.ndarray] = {}
        self._scratch: dict[tuple[int, tuple[int, ...]], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._widened = np.empty((4, self.m + 1))  # the float64 price columns handed out by arrays()
        self._chunk_scratch: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._narrow: np.ndarray | None = None  # the float32 price columns handed out by the compiled path
        # bar 0 as arrays() hands it out: the given price through float32 (as the rebuilt columns)
        self._first_widened = [float(np.asarray(f, dtype=np.float32)[0]) for f in self.first]

    def columns(self, perms: np.ndarray, volume: bool = True) -> Iterator[dict[str, np.ndarray]]:
        """Per permutation: the permuted ``open, high, low, close`` (and ``volume``) arrays."""
        prices = _rebuild(self.base, self.offset_columns, perms)
        for i in range(perms.shape[0]):
            out: dict[str, np.ndarray] = {}
            for j, col in enumerate(PRICE_COLUMNS):
                values = prices[j, i]
                values[0] = self.first[j][0]  # bar 0 exactly as given
                out[col] = values
            if volume and self.volume is not None:
                out["volume"] = np.concatenate([self.volume[:1], self.volume[1:][perms[i]]])
            yield out

    def arrays(self, perms: np.ndarray, names: frozenset[str], volume: bool) -> Iterator[dict[str, np.ndarray]]:
        """Per permutation: arrays of the permuted price columns ``names`` (plus open and close, which the
        engine reads) and ``volume`` if asked — the values of :meth:`columns` (float64: each float32 price
        widened exactly; the compiled path hands out the float32 values themselves), rebuilding only those
        columns. The arrays are buffers reused for the next permutation:
        each dict is valid until the iterator advances."""
        others = tuple(j for j, col in enumerate(PRICE_COLUMNS[:3]) if col in names or col == "open")
        table = self._tables.get(others)
        if table is None:
            table = self._tables[others] = _offset_table(self.offset_columns, others)
        if _permute is not None:
            yield from self._chunked_arrays(perms, others, table, volume)
            return
        b = perms.shape[0]
        scratch = self._scratch.get((b, others))
        if scratch is None:  # one set per batch size: every batch but the last has the same
            scratch = self._scratch[(b, others)] = (np.empty((b, self.m + 1)), np.empty((b, len(others), self.m)),
                                                    np.empty((4, b, self.m + 1), dtype=np.float32))
        log_close, logs, rounded = scratch
        _log_prices(self.base, table, perms, log_close, logs)
        np.exp(log_close, out=rounded[3])
        for k, j in enumerate(others):
            np.exp(logs[:, k], out=rounded[j, :, 1:])
        wanted = (*others, 3)
        for j in wanted:
            rounded[j, :, 0] = self.first[j][0]  # bar 0 exactly as given
        widened = {PRICE_COLUMNS[j]: self._widened[j] for j in wanted}
        for i in range(b):
            for j in wanted:
                np.copyto(self._widened[j], rounded[j, i])
            out = dict(widened)
            if volume and self.volume is not None:
                out["volume"] = np.concatenate([self.volume[:1], self.volume[1:][perms[i]]])
            yield out

    def _chunked_arrays(self, perms: np.ndarray, others: tuple[int, ...], table: np.ndarray,
                        volume: bool) -> Iterator[dict[str, np.ndarray]]:
        """:meth:`arrays` by the compiled kernel, :data:`_CHUNK_BARS` bars at a time (the running close sum
        carried from chunk to chunk: the one-pass log prices bit for bit), numpy's exp of each chunk written
        straight into the float32 columns (the numpy path's float32 rounding) while the chunk is in cache. The
        columns are handed out as those float32 values: every reader widens them exactly (the engine's kernel
        and the strategies' read any float dtype), so no widened copy is made."""
        assert _permute is not None
        wanted = (*others, 3)
        if self._narrow is None:
            self._narrow = np.empty((4, self.m + 1), dtype=np.float32)
        prices = self._narrow
        chunk, k = _CHUNK_BARS, len(others)
        scratch = self._chunk_scratch.get((chunk, k))
        if scratch is None:
            scratch = self._chunk_scratch[(chunk, k)] = (np.empty(chunk + 1), np.empty(k * chunk))
        log_close, logs = scratch
        columns = {PRICE_COLUMNS[j]: prices[j] for j in wanted}
        for i in range(perms.shape[0]):
            perm, carry = perms[i], None
            for start in range(0, self.m, chunk):
                stop = min(self.m, start + chunk)
                size = stop - start
                closes, offs = log_close[: size + 1], logs[: k * size].reshape(k, size)
                carry = _permute.rebuild(table, perm[start:stop], self.base, closes, offs, carry)
                for j, source in ((3, closes[1:]), *zip(others, offs, strict=True)):
                    np.exp(source, out=prices[j, start + 1 : stop + 1])
            for j in wanted:
                prices[j, 0] = self._first_widened[j]  # bar 0 exactly as given (through float32)
            out = dict(columns)
            if volume and self.volume is not None:
                out["volume"] = np.concatenate([self.volume[:1], self.volume[1:][perms[i]]])
            yield out

    def frames(self, perms: np.ndarray) -> Iterator[pd.DataFrame]:
        assert not isinstance(self.frame, Mapping), "frames() permutes a DataFrame"
        for columns in self.columns(perms):
            out = self.frame.copy(deep=False)
            for col, column in columns.items():
                out[col] = column
            yield out

    def null(self, perms: np.ndarray, strategy: PreparedStrategy, execution: ExecutionParams,
             stat: Callable[[np.ndarray], float]) -> Iterator[float]:
        """The statistic of each permutation: the strategy re-run on the permuted columns (inputs prepared
        once; a permuted frame is valid by construction) — bit for bit ``stat(strategy_returns(frame))``."""
        for prices in self.arrays(perms, strategy.inputs, volume="volume" in strategy.inputs):
            exposure = strategy.exposure(prices, execution.allow_short)
            yield stat(trusted_returns(self.ts, prices["open"], prices["close"], exposure, execution,
                                       self.year_fraction))


def permuted_frames(frame: pd.DataFrame, rng: np.random.Generator, n: int) -> Iterator[pd.DataFrame]:
    """Yield ``n`` permuted copies of ``frame`` (see the module docstring), in permutation order."""
    permuter = _Permuter(frame)
    for perms in _permutation_batches(rng, permuter.m, n, permuter.per_batch):
        yield from permuter.frames(perms)


# -- parallel evaluation ---------------------------------------------------------------------------------
# The parent draws every permutation in order and hands each batch to a worker; ordered_map keeps the order (with
# at most two batches a worker in flight), so the null distribution is bit-identical to the serial one whatever the
# number of workers.

_job: tuple[_Permuter, PreparedStrategy, Any, Callable[[np.ndarray], float]] | None = None


def frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns a permutation reads, as numpy arrays: what the parent sends each worker instead of the frame.
    A worker then unpickles no DataFrame and never imports pandas: about 80 MB less resident per worker
    (pandas and the pyarrow it loads), which a 500k-bar run's memory summed over its processes needs
    (issue #13: <= 1 GB)."""
    return {c: frame[c].to_numpy() for c in ("ts", *PRICE_COLUMNS, "volume") if c in frame.columns}


def _init_worker(frame: Mapping[str, np.ndarray], strategy: str, params: Mapping[str, Any], execution: Any,
                 statistic: str) -> None:
    global _job
    _job = (_Permuter(frame), prepare_strategy(strategy, params), execution,
            statistic_fn(statistic, float(execution.bars_per_year)))


def _null_of(perms: np.ndarray) -> list[float]:
    assert _job is not None
    permuter, strategy, execution, stat = _job
    return list(permuter.null(perms, strategy, execution, stat))


def permutation_workers(n: int, n_bars: int) -> int:
    """Worker processes for ``n`` permutations of ``n_bars`` bars (documented rule).

    ``$ALPHAFORGE_PERMUTATION_WORKERS`` if set; else 1 for small jobs (< PARALLEL_MIN_BAR_EVALS bar
    evaluations, where process start-up would dominate) and inside worker processes (a sweep or Dask worker
    must not fan out again); else the CPUs available to this process.
    """
    if n * n_bars < PARALLEL_MIN_BAR_EVALS and not os.environ.get("ALPHAFORGE_PERMUTATION_WORKERS"):
        return 1
    return fan_out("ALPHAFORGE_PERMUTATION_WORKERS")


def _worker_context() -> Any:
    """The "forkserver" context the workers fork from. Its server preloads this module — numpy and the
    backtest, not pandas (no module a worker imports does): each worker forks with them imported instead of
    importing them itself (about 0.25 s of CPU per worker, at the start of the test); the idle server holds
    35 MB resident instead of 13. (Preloading pandas too cost about 100 MB, which a 500k-bar run's memory
    summed over its processes cannot afford: issue #13, <= 1 GB.)"""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def prestart_workers(n: int, n_bars: int) -> bool:
    """When ``n`` permutations of ``n_bars`` bars will run on worker processes (:func:`permutation_workers`),
    start their fork server now, in the background, so that its start overlaps the caller's work before the
    test (loading, features, the backtest). Whether it did. Changes nothing in the results."""
    if n <= 0 or permutation_workers(n, n_bars) <= 1:
        return False
    _worker_context()
    forkserver.ensure_running()
    return True


class PermutationsStopped(Exception):
    """The permutation test was stopped (its ``stop`` event set) before it finished."""


def _stoppable(batches: Iterator[np.ndarray], stop: threading.Event | None) -> Iterator[np.ndarray]:
    for batch in batches:
        if stop is not None and stop.is_set():
            raise PermutationsStopped("the permutation test was stopped")
        yield batch


def _parallel_null(frame: pd.DataFrame, strategy: str, params: Mapping[str, Any], execution: Any,
                   statistic: str, rng: np.random.Generator, n: int, workers: int,
                   stop: threading.Event | None = None) -> np.ndarray:
    permuter = _Permuter(frame)
    with ProcessPoolExecutor(workers, mp_context=_worker_context(), initializer=_init_worker,
                             initargs=(frame_columns(frame), strategy, dict(params), execution, statistic)) as pool:
        drawn = _permutation_batches(rng, permuter.m, n, permuter.per_batch)
        batches = (p.astype(np.int32, copy=False) for p in _stoppable(drawn, stop))
        results = ordered_map(pool, _null_of, batches, window=2 * workers)  # not pool.map: it drains `batches`
        return np.fromiter(itertools.chain.from_iterable(results), dtype=float, count=n)


def permutation_test(
    frame: pd.DataFrame,
    strategy: str,
    params: Mapping[str, Any],
    execution: Any,
    *,
    n: int,
    seed: int,
    statistic: str = HeadlineMetric.SHARPE.value,
    workers: int | None = None,
    stop: threading.Event | None = None,
) -> PermutationResult | None:
    """The permutation p-value of ``strategy`` on ``frame`` (``None`` when ``n == 0``).

    ``workers``: processes evaluating the permutations (default :func:`permutation_workers`); the result is
    identical for any number of workers. ``stop``: once set, the test raises :class:`PermutationsStopped` at
    its next permutation batch (a caller whose run failed need not wait for the rest).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigInvalid(f"validation.permutation.n must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < UINT32:
        raise ConfigInvalid(f"permutation seed must be a uint32, got {seed!r}")
    if n == 0:
        return None
    if len(frame) < 2:
        raise DataInvalid(f"permutation test needs at least 2 bars, got {len(frame)}")
    stat = statistic_fn(statistic, execution.resolved_bars_per_year)
    observed = stat(strategy_returns(frame, strategy, params, execution))
    rng = np.random.default_rng(int(seed))
    workers = permutation_workers(int(n), len(frame)) if workers is None else workers
    null = None
    if workers > 1:
        try:
            null = _parallel_null(frame, strategy, params, execution, statistic, np.random.default_rng(int(seed)),
                                  int(n), workers, stop)
        except (BrokenProcessPool, OSError) as exc:  # e.g. a __main__ that child processes cannot import
            log.warning("parallel permutations unavailable (%s); running them in this process", exc)
    if null is None:
        permuter, prepared = _Permuter(frame), prepare_strategy(strategy, params)
        batches = _stoppable(_permutation_batches(rng, permuter.m, int(n), permuter.per_batch), stop)
        null = np.fromiter(itertools.chain.from_iterable(permuter.null(p, prepared, execution, stat)
                                                         for p in batches), dtype=float, count=int(n))
    return PermutationResult(
        pvalue=permutation_pvalue(observed, null),
        observed=float(observed),
        n=int(n),
        null_digest=sha256_hex(np.ascontiguousarray(null, dtype="<f4").tobytes()),
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if n > 1 else 0.0,
        statistic=statistic,
    )
