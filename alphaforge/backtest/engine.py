"""The backtest engine: fills, costs, trades and the equity curve of one single-symbol run.

Execution rules (the contract; every number below is float64 inside the engine)
-------------------------------------------------------------------------------
* **Timing.** ``exposure[t]`` is the target decided with bar t's close. It fills at bar t+1's open; the last
  bar's decision never fills. The position is re-sized only when the target *changes*
  (``exposure[t] != exposure[t-1]``, with ``exposure[-1] = 0``); between changes the number of units is held
  constant (no drift rebalancing). NaN exposure means flat; values are clipped to [-1, 1] (``allow_short``) or
  [0, 1].
* **Sizing.** ``target_units = exposure[t] * equity[t] / open[t+1]`` where ``equity[t]`` is the equity marked at
  bar t's close and ``open[t+1]`` is the *reference fill price* (the next bar's open, before slippage — sizing on
  the slipped price would be circular since the slippage direction depends on the trade). If ``equity[t] <= 0``
  the target is flat.
* **Fill price and slippage.** Trade rows and the position book use the reference fill price ``p = open[t+1]``.
  The cash actually paid is ``p * (1 + slippage_bps/1e4)`` per unit bought and received ``p * (1 −
  slippage_bps/1e4)`` per unit sold: slippage always moves the price against the trader; the difference,
  ``|qty| * p * slippage_bps/1e4``, is a cost.
* **Fees.** ``|qty| * p * fee_bps/1e4`` on the traded (reference) notional, paid in cash. So a fill's total
  transaction cost is ``|qty| * p * cost_bps/1e4`` with ``cost_bps = fee_bps + slippage_bps`` (the trade row's
  ``cost_bps``) — it can be recomputed exactly from the row.
* **Borrow.** ``borrow_bps_annual / 1e4 * dt[s] * |units| * close[s]`` accrues at every bar s's close while
  the position is short, where ``dt[s] = (ts[s] - ts[s-1]) / YEAR_NS`` is the calendar time since the previous
  bar as a share of a 365.25-day year (:func:`alphaforge.backtest.calendar.year_fractions`): borrow is charged
  by elapsed calendar time, not per bar, so the first bar after a weekend accrues the weekend and the
  engine needs no ``bars_per_year``. Accrued borrow is *allocated* to the trades that reduce/close that short, pro
  rata to the fraction of the short they close (the ``borrow_cost`` column); borrow of a short still open at
  the end stays unallocated (it is in ``cost_drag`` but on no row).
* **Trade rows.** One row per fill; a fill that crosses zero is split into two rows at the same ts: the
  closing row (side ``"flat"``) then the opening row. ``side`` is ``"flat"`` when the row takes the position to
  zero, else ``"buy"``/``"sell"`` by the sign of ``qty``. ``entry_price`` = the average entry price of the
  position being reduced/closed, or the fill price for an opening/increasing row; ``exit_price`` = the fill
  price for a reducing/closing row, NaN otherwise. ``pnl = -qty * (exit_price - entry_price)`` on
  reducing/closing rows and 0 on opening rows.

Accounting (average-cost book; the identity holds exactly in exact arithmetic)
------------------------------------------------------------------------------
* ``realized_pnl`` and ``unrealized_pnl`` are **price PnL, gross of every cost**: realized = the sum of the
  rows' ``pnl``; unrealized = ``units * (close - average entry price)``.
* ``cost_drag`` = cumulative fees + slippage + accrued borrow (all costs, allocated or not).
* Therefore, at every bar: ``equity - realized_pnl - unrealized_pnl + cost_drag == initial_equity``, and the
  sum of the trades' ``pnl`` equals the last ``realized_pnl``. A row's net result is
  ``pnl - |qty| * price * cost_bps/1e4 - borrow_cost`` (fees are never inside ``pnl``; they are in
  ``cost_drag`` from the bar they are paid). Why gross: with ``cost_drag`` holding every cost, the identity
  above and ``Σ pnl == realized_pnl`` can only both hold if ``pnl`` excludes costs; the row carries
  ``cost_bps`` and ``borrow_cost`` so the net figure is exact (``alphaforge.metrics`` uses it for win rate and
  profit factor).
* ``equity = cash + units * close`` is computed independently of the book (cash moves by the slipped fill
  notional, fees and accrued borrow), so the identity is a real check, not a tautology.
* ``drawdown = 1 - equity / running peak`` (a fraction, >= 0). ``returns[s] = equity[s] / equity[s-1] - 1``
  in float64 (``returns[0] = 0``; 0 where the previous equity is not positive).

Vectorization: only the bars where the target changes are visited by the ledger loop (scalar arithmetic, one
segment per fill); everything per bar is numpy over segment-indexed arrays, using the *same* float64 expressions
as the loop so the equity the loop sizes from is bit-identical to the reported equity. Every per-bar value
depends only on bars at or before it (cumulative sums are sequential), so truncating the data never changes the
past.

Compiled kernel: the loop runs in C (``alphaforge/backtest/_ledger.c``, built by setup.py) when the module is
importable — the same IEEE double operations in the same order as the pure-Python reference
:func:`_run_ledger` (no FMA contraction, no reassociation), so the results are bit-identical; the returns-only
paths (:func:`equity_returns`, :func:`trusted_returns`) use its fused per-bar pass (cumulative close, ledger,
equity and returns in one loop). Without the module (no compiler at install) the Python reference runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from alphaforge.backtest.calendar import year_fractions
from alphaforge.backtest.strategies import target_exposure
from alphaforge.enums import TradeSide
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.numeric import finite_number

if TYPE_CHECKING:  # imported where a frame is built: the validation re-runs (strategy_returns,
    import pandas as pd  # trusted_returns) never import pandas, so a permutation worker does not (issue #13)

try:
    from alphaforge.backtest import _ledger
except ImportError:  # built optional=True: without a compiler the pure-Python reference runs
    _ledger = None  # type: ignore[assignment]

TRADE_COLUMNS: tuple[str, ...] = (
    "ts", "side", "qty", "entry_price", "exit_price", "cost_bps", "borrow_cost", "pnl", "position_after",
)
EQUITY_COLUMNS: tuple[str, ...] = ("ts", "equity", "drawdown", "realized_pnl", "unrealized_pnl", "cost_drag")
_PRICE_COLUMNS = ("open", "close")
_POSITIVE_FIELDS = ("initial_equity", "bars_per_year")  # the others are costs: >= 0
_SIDES = np.array([TradeSide.BUY.value, TradeSide.SELL.value, TradeSide.FLAT.value], dtype=object)  # by code
_BUY, _SELL, _FLAT = 0.0, 1.0, 2.0  # the side codes of the ledger's rows (plain str in the trades frame)
#: Columns of the ledger's segment table and of its trade-row table (the compiled kernel packs the same).
_SEGMENT_WIDTH, _ROW_WIDTH = 9, 8


@dataclass(frozen=True)
class ExecutionParams:
    """Execution and cost assumptions of a run: the config's ``[execution]`` section and the engine's input.

    Validated on construction (errors name ``execution.<field>``; ints are stored as floats, so
    ``fee_bps = 1`` and ``fee_bps = 1.0`` are the same config). ``bars_per_year = None`` means "infer it from
    the data's calendar" (:func:`alphaforge.backtest.calendar.infer_bars_per_year`): the pipeline resolves it
    with ``dataclasses.replace`` before metrics and validation use it. The engine itself does not need it
    (borrow accrues by calendar time).
    """

    initial_equity: float = 100_000.0
    fee_bps: float = 1.0
    slippage_bps: float = 0.5
    borrow_bps_annual: float = 25.0
    allow_short: bool = False
    bars_per_year: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            where = f"execution.{f.name}"
            if f.name == "allow_short":
                if not isinstance(value, bool | np.bool_):
                    raise ConfigInvalid(f"{where}: expected true or false, got {value!r}", field=where,
                                        value=value)
                object.__setattr__(self, f.name, bool(value))
                continue
            if f.name == "bars_per_year" and value is None:
                continue
            number = finite_number(value)
            if number is None:
                raise ConfigInvalid(f"{where}: expected a number, got {value!r}", field=where, value=value)
            positive = f.name in _POSITIVE_FIELDS
            if (positive and number <= 0) or (not positive and number < 0):
                rule = "> 0" if positive else ">= 0"
                raise ConfigInvalid(f"{where}: must be {rule}, got {number:g}", field=where, value=value)
            object.__setattr__(self, f.name, number)

    @property
    def resolved_bars_per_year(self) -> float:
        """``bars_per_year``, which the engine needs set (:class:`ConfigInvalid` while it is still ``None``)."""
        if self.bars_per_year is None:
            raise ConfigInvalid("execution.bars_per_year is not resolved: set it, or let the pipeline infer it "
                                "from the data's calendar (dataclasses.replace(execution, bars_per_year=...))",
                                field="execution.bars_per_year")
        return self.bars_per_year


@dataclass(frozen=True)
class BacktestResult:
    """Trades (one row per fill), equity (one row per bar), float64 per-bar returns and units held per bar."""

    trades: pd.DataFrame
    equity: pd.DataFrame
    returns: np.ndarray
    position: np.ndarray


@dataclass
class _Ledger:
    """The loop's output: one entry per segment (segment 0 = before the first fill) plus the trade rows."""

    fill_bars: np.ndarray
    units: np.ndarray
    cash: np.ndarray          # cash excluding borrow (initial − Σ slipped notional − fees)
    borrow_base: np.ndarray   # borrow accrued up to the bar before the segment starts
    close_base: np.ndarray    # cumulative close * year fraction up to the bar before the segment starts
    short_rate: np.ndarray    # borrow per year per unit of close: annual rate * max(-units, 0)
    avg_entry: np.ndarray
    realized: np.ndarray
    costs: np.ndarray         # cumulative fees + slippage
    rows: np.ndarray          # (rows, 8) float64: bar, side code, qty, entry, exit, borrow_cost, pnl, position_after

    @classmethod
    def of(cls, segments: np.ndarray, rows: np.ndarray) -> _Ledger:
        """From the segment table ``(segments, 9)``: first bar, units, cash, borrow base, close base, short
        rate, average entry, realized, costs."""
        c = [np.ascontiguousarray(segments[:, j]) for j in range(_SEGMENT_WIDTH)]
        return cls(c[0][1:].astype(np.int64), c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], rows)


def _validate_inputs(frame: pd.DataFrame, exposure: np.ndarray, allow_short: bool) -> tuple[np.ndarray, ...]:
    missing = [col for col in ("ts", *_PRICE_COLUMNS) if col not in frame.columns]
    if missing:
        raise DataInvalid(f"backtest frame lacks column(s) {missing}; pass the normalized OHLCV frame", columns=missing)
    n = len(frame)
    if n == 0:
        raise DataInvalid("backtest frame has no rows", column="ts")
    exp = np.asarray(exposure)
    if exp.ndim != 1 or len(exp) != n:
        raise DataInvalid(f"exposure has shape {exp.shape}, expected ({n},) — one target per bar", column="exposure")
    ts = frame["ts"].to_numpy()
    if ts.dtype != np.int64:
        raise DataInvalid(f"column ts must be int64 epoch ns, got {ts.dtype}", column="ts")
    prices = []
    for col in _PRICE_COLUMNS:
        arr = frame[col].to_numpy(dtype=np.float64)
        if len(arr) and arr.min() > 0 and np.isfinite(arr.max()):  # NaN fails the min, +inf the max: all valid
            prices.append(arr)
            continue
        bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
        if len(bad):
            raise DataInvalid(
                f"column {col} must be finite and > 0; row {int(bad[0])} (ts={int(ts[bad[0]])}) is {arr[bad[0]]!r}",
                column=col, row=int(bad[0]),
            )
        prices.append(arr)
    # NaN (warm-up) → flat; out-of-range → clipped to [-1, 1] (long/short) or [0, 1] (long/flat).
    exp64 = exp.astype(np.float64)  # NaN -> 0 (nan_to_num's infinities are clipped away: the same values)
    exp64[np.isnan(exp64)] = 0.0
    np.clip(exp64, -1.0 if allow_short else 0.0, 1.0, out=exp64)
    return ts, prices[0], prices[1], exp64


def _run_ledger(open_: np.ndarray, cum_close: np.ndarray, close: np.ndarray, exposure: np.ndarray,
                execution: ExecutionParams) -> _Ledger:
    """Visit only the decisions that change the target; arithmetic mirrors :func:`_equity_and_borrow` exactly.

    The pure-Python reference of the compiled kernel (:func:`_compiled_ledger`, bit-identical)."""
    n = len(close)
    previous = np.concatenate(([0.0], exposure[:-1]))
    decisions = np.flatnonzero(exposure[:-1] != previous[:-1])
    cost_rate = (execution.fee_bps + execution.slippage_bps) / 1e4
    borrow_rate = execution.borrow_bps_annual / 1e4  # per year; cum_close is Σ close * year fraction
    nan = float("nan")

    units, cash, b_base, c_base, s_rate = 0.0, float(execution.initial_equity), 0.0, 0.0, 0.0
    avg, realized, costs, allocated = 0.0, 0.0, 0.0, 0.0
    # one tuple per segment: (first bar, units, cash, b_base, c_base, s_rate, avg, realized, costs)
    segments: list[tuple[float, ...]] = [(0.0, units, cash, b_base, c_base, s_rate, avg, realized, costs)]
    rows: list[tuple[Any, ...]] = []  # (bar, side code, qty, entry_price, exit_price, borrow_cost, pnl, position_after)
    columns = (decisions.tolist(), exposure[decisions].tolist(), close[decisions].tolist(),
               cum_close[decisions].tolist(), open_[decisions + 1].tolist() if n > 1 else [])
    for t, exp_t, close_t, cum_t, price in zip(*columns, strict=True):
        borrow_t = b_base + s_rate * (cum_t - c_base)
        equity_t = (cash - borrow_t) + units * close_t
        target = exp_t * equity_t / price if equity_t > 0.0 else 0.0
        if target == units:
            continue
        bar = t + 1
        if units != 0.0 and (target == 0.0 or (target > 0.0) != (units > 0.0) or abs(target) < abs(units)):
            # reduce or close (and possibly flip): the closing part is its own row
            closing = target == 0.0 or (target > 0.0) != (units > 0.0)
            qty = -units if closing else target - units
            borrow = 0.0
            if units < 0.0:
                unallocated = borrow_t - allocated
                borrow = unallocated if closing else unallocated * (qty / -units)
                allocated += borrow
            pnl = -qty * (price - avg)
            realized += pnl
            after = 0.0 if closing else target
            side = _FLAT if after == 0.0 else (_BUY if qty > 0.0 else _SELL)
            rows.append((bar, side, qty, avg, price, borrow, pnl, after))
            notional, flow = abs(qty) * price, qty * price
            opening, held = (target if closing else 0.0), 0.0
        else:
            notional, flow = 0.0, 0.0
            opening, held = target - units, units  # open from flat or increase
        if opening != 0.0:
            rows.append((bar, _BUY if opening > 0.0 else _SELL, opening, price, nan, 0.0, 0.0, target))
            notional += abs(opening) * price
            flow += opening * price
            avg = price if held == 0.0 else (held * avg + opening * price) / target
        elif target == 0.0:
            avg = 0.0
        # cash pays the slipped notional (flow + notional * slip_rate) and the fee (notional * fee_rate)
        fee_slip = notional * cost_rate
        cash = cash - flow - fee_slip
        costs += fee_slip
        units, b_base, c_base = target, borrow_t, cum_t
        s_rate = borrow_rate * (-units if units < 0.0 else 0.0)
        segments.append((bar, units, cash, b_base, c_base, s_rate, avg, realized, costs))

    return _Ledger.of(np.asarray(segments, dtype=np.float64),
                      np.asarray(rows, dtype=np.float64).reshape(len(rows), _ROW_WIDTH))


def _rates(execution: ExecutionParams) -> tuple[float, float, float]:
    """``(initial equity, fee + slippage per unit notional, borrow per year)`` as the ledger uses them."""
    return (float(execution.initial_equity), (execution.fee_bps + execution.slippage_bps) / 1e4,
            execution.borrow_bps_annual / 1e4)


def _compiled_ledger(open_: np.ndarray, cum_close: np.ndarray, close: np.ndarray, exposure: np.ndarray,
                     execution: ExecutionParams, want_rows: bool = True) -> _Ledger:
    """:func:`_run_ledger` in C (float64 contiguous inputs); ``want_rows=False`` leaves the rows empty."""
    o, c, cum, e = (np.ascontiguousarray(a, dtype=np.float64) for a in (open_, close, cum_close, exposure))
    initial, cost_rate, borrow_rate = _rates(execution)
    segments, rows = _ledger.ledger(o, c, cum, e, initial, cost_rate, borrow_rate, want_rows)
    packed = np.frombuffer(rows or b"", dtype=np.float64).reshape(-1, _ROW_WIDTH)
    return _Ledger.of(np.frombuffer(segments, dtype=np.float64).reshape(-1, _SEGMENT_WIDTH), packed)


def _segments(n: int, fill_bars: np.ndarray) -> np.ndarray:
    marks = np.zeros(n, dtype=np.int64)
    marks[fill_bars] = 1
    return np.cumsum(marks)


def _equity_and_borrow(ledger: _Ledger, seg: np.ndarray, close: np.ndarray,
                       cum_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    borrow = ledger.borrow_base[seg] + ledger.short_rate[seg] * (cum_close - ledger.close_base[seg])
    equity = (ledger.cash[seg] - borrow) + ledger.units[seg] * close
    return equity, borrow


def _returns(equity: np.ndarray) -> np.ndarray:
    out = np.zeros(len(equity), dtype=np.float64)
    prev = equity[:-1]
    np.divide(equity[1:], prev, out=out[1:], where=prev > 0.0)
    out[1:] = np.where(prev > 0.0, out[1:] - 1.0, 0.0)
    return out


def returns_from_equity(equity: np.ndarray) -> np.ndarray:
    """The engine's per-bar returns rule applied to an equity curve (e.g. a stored float32 one), in float64:
    ``r[s] = equity[s] / equity[s-1] - 1``, ``r[0] = 0``, 0 where the previous equity is not positive."""
    return _returns(np.asarray(equity, dtype=np.float64))


def _prepare(frame: pd.DataFrame, exposure: np.ndarray,
             execution: ExecutionParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Ledger]:
    if not isinstance(execution, ExecutionParams):
        raise ConfigInvalid("execution must be an ExecutionParams", field="execution")
    ts, open_, close, exp = _validate_inputs(frame, exposure, execution.allow_short)
    return (ts, *_ledger_of(ts, open_, close, exp, execution))


def _ledger_of(ts: np.ndarray, open_: np.ndarray, close: np.ndarray, exp: np.ndarray,
               execution: ExecutionParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Ledger]:
    cum_close = np.cumsum(close * year_fractions(ts))  # the borrow base: Σ close[s] * dt[s]
    ledger = (_run_ledger if _ledger is None else _compiled_ledger)(open_, cum_close, close, exp, execution)
    return close, cum_close, _segments(len(close), ledger.fill_bars), ledger


def _returns_of(close: np.ndarray, cum_close: np.ndarray, seg: np.ndarray, ledger: _Ledger) -> np.ndarray:
    equity, _ = _equity_and_borrow(ledger, seg, close, cum_close)
    return _returns(equity)


def equity_returns(frame: pd.DataFrame, exposure: np.ndarray, execution: ExecutionParams) -> np.ndarray:
    """Only the float64 per-bar equity returns of :func:`run_backtest` (same arithmetic, no frames)."""
    if not isinstance(execution, ExecutionParams):
        raise ConfigInvalid("execution must be an ExecutionParams", field="execution")
    ts, open_, close, exp = _validate_inputs(frame, exposure, execution.allow_short)
    return _fused_returns(ts, open_, close, exp, execution)


def trusted_returns(ts: np.ndarray, open_: np.ndarray, close: np.ndarray, exposure: np.ndarray,
                    execution: ExecutionParams, year_fraction: np.ndarray | None = None) -> np.ndarray:
    """:func:`equity_returns` for prices known valid (finite, > 0; e.g. a permuted frame's, positive by
    construction) and an exposure from the strategy registry (float32 in range, no NaN): the same
    arithmetic on the same float64 values (float32 prices are widened exactly, by the kernel when built),
    without re-checking the frame. ``year_fraction``: the calendar's
    :func:`year_fractions` of ``ts`` when the caller already has them (many runs on one calendar)."""
    lo = -1.0 if execution.allow_short else 0.0
    if _ledger is not None and exposure.dtype == np.float32:  # the kernel widens and clips the float32 itself
        o, c = (np.ascontiguousarray(a, dtype=a.dtype if a.dtype in (np.float32, np.float64) else np.float64)
                for a in (np.asarray(open_), np.asarray(close)))
        yf = np.ascontiguousarray(year_fractions(ts) if year_fraction is None else year_fraction, dtype=np.float64)
        out = np.empty(len(c), dtype=np.float64)
        initial, cost_rate, borrow_rate = _rates(execution)
        _ledger.returns(o, c, yf, np.ascontiguousarray(exposure), out, initial, cost_rate, borrow_rate, lo)
        return out
    exp64 = np.clip(exposure.astype(np.float64), lo, 1.0)
    return _fused_returns(ts, np.asarray(open_, dtype=np.float64), np.asarray(close, dtype=np.float64), exp64,
                          execution, year_fraction)


def _fused_returns(ts: np.ndarray, open_: np.ndarray, close: np.ndarray, exp: np.ndarray,
                   execution: ExecutionParams, year_fraction: np.ndarray | None = None) -> np.ndarray:
    """The per-bar returns: the compiled one-pass kernel, else the Python ledger and numpy per bar."""
    if _ledger is None:
        return _returns_of(*_ledger_of(ts, open_, close, exp, execution))
    yf = year_fractions(ts) if year_fraction is None else year_fraction
    out = np.empty(len(close), dtype=np.float64)
    o, c, y, e = (np.ascontiguousarray(a, dtype=np.float64) for a in (open_, close, yf, exp))
    initial, cost_rate, borrow_rate = _rates(execution)
    _ledger.returns(o, c, y, e, out, initial, cost_rate, borrow_rate)
    return out


def _trades_frame(ts: np.ndarray, rows: np.ndarray, cost_bps: float) -> pd.DataFrame:
    import pandas as pd

    bars = rows[:, 0].astype(np.int64)
    data: dict[str, Any] = {"ts": ts[bars].astype(np.int64),
                            "side": pd.Series(_SIDES[rows[:, 1].astype(np.intp)], dtype=str)}
    for j, name in enumerate(("qty", "entry_price", "exit_price", "borrow_cost", "pnl", "position_after"), 2):
        data[name] = rows[:, j].astype(np.float32)
    data["cost_bps"] = np.full(len(bars), cost_bps, dtype=np.float32)
    return pd.DataFrame(data, columns=list(TRADE_COLUMNS), copy=False)


def run_backtest(frame: pd.DataFrame, exposure: np.ndarray, execution: ExecutionParams) -> BacktestResult:
    """Simulate target ``exposure`` (fraction of equity in [-1, 1] per bar) on ``frame`` (see module rules)."""
    import pandas as pd

    ts, close, cum_close, seg, ledger = _prepare(frame, exposure, execution)
    equity, borrow = _equity_and_borrow(ledger, seg, close, cum_close)
    units = ledger.units[seg]
    peak = np.maximum.accumulate(equity)
    equity_frame = pd.DataFrame(
        {
            "ts": ts.astype(np.int64),
            "equity": equity.astype(np.float32),
            "drawdown": (1.0 - equity / peak).astype(np.float32),
            "realized_pnl": ledger.realized[seg].astype(np.float32),
            "unrealized_pnl": (units * (close - ledger.avg_entry[seg])).astype(np.float32),
            "cost_drag": (ledger.costs[seg] + borrow).astype(np.float32),
        },
        columns=list(EQUITY_COLUMNS),
        copy=False,  # every column is a fresh array
    )
    trades = _trades_frame(ts, ledger.rows, float(execution.fee_bps + execution.slippage_bps))
    return BacktestResult(trades=trades, equity=equity_frame, returns=_returns(equity),
                          position=units)


def simulate(frame: pd.DataFrame, strategy: str, params: Mapping[str, Any], execution: ExecutionParams,
             features: Mapping[str, np.ndarray] | None = None) -> BacktestResult:
    """Run registered ``strategy`` with ``params`` (features computed unless given, keyed by column name)."""
    exposure = target_exposure(strategy, params, frame, execution.allow_short, features=features)
    return run_backtest(frame, exposure, execution)


def strategy_returns(frame: pd.DataFrame, strategy: str, params: Mapping[str, Any],
                     execution: ExecutionParams) -> np.ndarray:
    """Fast path for validation re-runs: exactly ``simulate(frame, strategy, params, execution).returns``."""
    exposure = target_exposure(strategy, params, frame, execution.allow_short)
    return equity_returns(frame, exposure, execution)
