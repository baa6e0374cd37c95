"""Calendar time of a bar series: bars per year inferred from the timestamps, and each bar's share of a year.

A year is ``YEAR_NS`` = 365.25 days (the Julian year; 8,766 hours). Timestamps are int64 epoch ns, UTC.

Inference rule (:func:`infer_bars_per_year`), ``d`` = the median bar spacing, ``n`` = the number of bars:

* **Refused** (:class:`~alphaforge.errors.ConfigInvalid` on ``execution.bars_per_year``, asking for the explicit
  value) when ``n < MIN_BARS`` (30) or the data spans less than ``MIN_SPAN_DAYS`` (14) calendar days: too little
  calendar to tell a 5-day week from a 7-day one.
* **Daily bars on weekdays only** (``20 h <= d < 4 days`` and no bar on a Saturday or Sunday, UTC):
  ``252 / round(d in days)`` — the exchange trading-day convention (daily equities → 252; the calendar count
  below gives 250–253 with a real holiday calendar, so the convention is kept and daily figures do not move).
* **Weekly or coarser** (``d >= 4 days``): calendar bars, ``round(365.25 / d)`` (weekly → 52, monthly → 12,
  quarterly → 4, yearly → 1; below 1 bar a year ``365.25 / d`` unrounded).
* **Daily bars that include weekends** (crypto; every ``d`` in ``[20 h, 4 days)``): ``n`` bars cover ``n``
  spacings, ``n / ((ts[-1] - ts[0] + d) / YEAR_NS)`` (daily → 365.25, every 2 days → 182.6).
* **Intraday** (``d < 20 h``, any session shape): the number of bars per elapsed calendar year, measured over the data's **whole calendar weeks** (Monday 00:00 UTC to Monday
  00:00 UTC, every week that lies entirely between the first bar and the start of the last bar's week):
  ``bars in those weeks / (weeks * 7 days / 365.25 days)``. Whole weeks make the figure immune to where the
  data starts and ends inside a week (a partial first or last week with its weekend would otherwise bias it
  by up to a weekend's share of the span); weekend and holiday gaps are simply time without bars, and a few
  missing bars lower the figure only by the share missing. So hourly 24/7 → 8,766, minute 24/7 → 525,960,
  hourly FX 24×5 → 120 × 365.25 / 7 ≈ 6,261, regular-session minute equities → 390 × sessions a year
  (≈ 98,300 with 252 sessions). Two weeks of data always hold one whole week.

Borrow accrual (:func:`year_fractions`): bar ``s`` accrues the calendar time since the previous bar,
``(ts[s] - ts[s-1]) / YEAR_NS`` (0 for the first bar), so the first bar after a weekend accrues the weekend.
"""

from __future__ import annotations

import numpy as np

from alphaforge.errors import ConfigInvalid, DataInvalid

DAY_NS = 86_400 * 10**9
YEAR_DAYS = 365.25
YEAR_NS = YEAR_DAYS * DAY_NS
WEEK_NS = 7 * DAY_NS
_MONDAY0_NS = 4 * DAY_NS  # 1970-01-05T00:00Z, a Monday (1970-01-01 was a Thursday)
MIN_BARS = 30
MIN_SPAN_DAYS = 14.0
TRADING_DAYS = 252.0
_INTRADAY_BELOW_NS = 20 * 3600 * 10**9
_FIELD = "execution.bars_per_year"
_EXAMPLES = "e.g. 252 for daily equities, 6261 for hourly FX (24x5), 8766 for hourly 24/7 data"


def _timestamps(ts: np.ndarray) -> np.ndarray:
    t = np.asarray(ts)
    if t.ndim != 1:
        raise DataInvalid(f"timestamps must be 1-D, got shape {t.shape}", column="ts")
    t = t.astype(np.int64)
    if len(t) >= 2 and not bool(np.all(np.diff(t) > 0)):
        raise DataInvalid("timestamps must be strictly increasing to measure calendar time", column="ts")
    return t


def year_fractions(ts: np.ndarray) -> np.ndarray:
    """Each bar's share of a year since the previous bar (``(ts[s] - ts[s-1]) / YEAR_NS``; 0 for bar 0)."""
    t = _timestamps(ts)
    out = np.zeros(len(t), dtype=np.float64)
    out[1:] = np.diff(t).astype(np.float64) / YEAR_NS
    return out


def _weekend_bars(t: np.ndarray) -> bool:
    """Whether any bar falls on a Saturday or Sunday (UTC); 1970-01-01 was a Thursday (weekday 3)."""
    weekday = (t // DAY_NS + 3) % 7  # Monday = 0
    return bool(np.any(weekday >= 5))


def infer_bars_per_year(ts: np.ndarray) -> float:
    """Bars per year from the data's calendar (see the module docstring for the rule and its refusals)."""
    t = _timestamps(ts)
    n = len(t)
    if n < MIN_BARS:
        raise ConfigInvalid(f"{_FIELD}: cannot infer bars per year from {n} bars (fewer than {MIN_BARS}); set "
                            f"execution.bars_per_year explicitly ({_EXAMPLES})", field=_FIELD, value=n)
    span_days = float(t[-1] - t[0]) / DAY_NS
    if span_days < MIN_SPAN_DAYS:
        raise ConfigInvalid(f"{_FIELD}: cannot infer bars per year from {span_days:.1f} calendar days of data "
                            f"(less than {MIN_SPAN_DAYS:g}); set execution.bars_per_year explicitly "
                            f"({_EXAMPLES})", field=_FIELD, value=span_days)
    spacing = float(np.median(np.diff(t)))
    days = spacing / DAY_NS
    if spacing >= _INTRADAY_BELOW_NS and days < 4.0 and not _weekend_bars(t):
        return TRADING_DAYS / max(1, round(days))
    if days >= 4.0:
        per_year = YEAR_DAYS / days
        return float(max(1, round(per_year))) if per_year >= 0.75 else per_year
    if spacing >= _INTRADAY_BELOW_NS:  # daily bars every day of the week: n bars cover n spacings
        return float(n / ((float(t[-1] - t[0]) + spacing) / YEAR_NS))
    first = _MONDAY0_NS + -(-(int(t[0]) - _MONDAY0_NS) // WEEK_NS) * WEEK_NS  # first Monday 00:00 >= t[0]
    last = _MONDAY0_NS + (int(t[-1]) - _MONDAY0_NS) // WEEK_NS * WEEK_NS    # the last bar's week's Monday
    inside = int(np.searchsorted(t, last, side="left") - np.searchsorted(t, first, side="left"))
    return float(inside / ((last - first) / YEAR_NS))
