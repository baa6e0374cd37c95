"""Calendar-true bars_per_year: synthetic calendars of each market type against first-principles figures.

Each expected figure is computed here from the calendar's *definition* (bars a session x sessions in the period /
the period's length in 365.25-day years), never from the inference function, and must agree within 1 %.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from alphaforge.backtest import ExecutionParams, run_backtest
from alphaforge.backtest.calendar import infer_bars_per_year, year_fractions
from alphaforge.errors import ConfigInvalid, DataInvalid
from alphaforge.metrics import performance_metrics

YEAR = dt.timedelta(days=365.25)
START, END = dt.datetime(2021, 1, 1, tzinfo=dt.UTC), dt.datetime(2023, 1, 1, tzinfo=dt.UTC)  # two years


def holidays(year: int) -> set[dt.date]:
    """Nine exchange-like holidays a year (weekday ones only matter): fixed dates, good enough for a calendar."""
    return {dt.date(year, m, d) for m, d in ((1, 1), (1, 18), (2, 15), (4, 2), (5, 31), (7, 5), (9, 6),
                                              (11, 25), (12, 24))}


def sessions(start: dt.datetime, end: dt.datetime, *, weekdays_only: bool, skip_holidays: bool) -> list[dt.date]:
    out, day = [], start.date()
    while day < end.date():
        if (not weekdays_only or day.weekday() < 5) and not (skip_holidays and day in holidays(day.year)):
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def stamps(times: list[dt.datetime]) -> np.ndarray:
    return np.array([int(t.timestamp()) * 10**9 for t in times], dtype=np.int64)


def years_of(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start) / YEAR


def daily_equities() -> tuple[np.ndarray, float]:
    days = sessions(START, END, weekdays_only=True, skip_holidays=True)
    times = [dt.datetime.combine(d, dt.time(21, 0), tzinfo=dt.UTC) for d in days]
    return stamps(times), len(days) / years_of(START, END)


def rth_minute_equities() -> tuple[np.ndarray, float]:
    """14:30–21:00 UTC (390 one-minute bars a session), weekdays without holidays, one year."""
    end = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
    days = sessions(START, end, weekdays_only=True, skip_holidays=True)
    times = [dt.datetime.combine(d, dt.time(14, 30), tzinfo=dt.UTC) + dt.timedelta(minutes=k)
             for d in days for k in range(390)]
    return stamps(times), 390 * len(days) / years_of(START, end)


def hourly_fx() -> tuple[np.ndarray, float]:
    """24x5: from Sunday 22:00 to Friday 22:00 UTC, 120 hourly bars a week."""
    t, times = START, []
    while t < END:
        wd, hour = t.weekday(), t.hour
        closed = wd == 5 or (wd == 4 and hour >= 22) or (wd == 6 and hour < 22)
        if not closed:
            times.append(t)
        t += dt.timedelta(hours=1)
    return stamps(times), 120 * (YEAR / dt.timedelta(weeks=1))


def hourly_24_7() -> tuple[np.ndarray, float]:
    times = [START + dt.timedelta(hours=k) for k in range(int((END - START) / dt.timedelta(hours=1)))]
    return stamps(times), 24 * (YEAR / dt.timedelta(days=1))


def minute_24_7() -> tuple[np.ndarray, float]:
    end = START + dt.timedelta(days=30)
    times = [START + dt.timedelta(minutes=k) for k in range(int((end - START) / dt.timedelta(minutes=1)))]
    return stamps(times), 24 * 60 * (YEAR / dt.timedelta(days=1))


def daily_crypto() -> tuple[np.ndarray, float]:
    days = sessions(START, END, weekdays_only=False, skip_holidays=False)
    return stamps([dt.datetime.combine(d, dt.time(0, 0), tzinfo=dt.UTC) for d in days]), 365.25


MARKETS = {
    "daily_equities": (daily_equities, 252.0),
    "rth_minute_equities": (rth_minute_equities, 98_000.0),
    "hourly_fx_24x5": (hourly_fx, 6_200.0),
    "hourly_24_7": (hourly_24_7, 8_760.0),
    "minute_24_7": (minute_24_7, 525_600.0),
    "daily_crypto": (daily_crypto, 365.0),
}


@pytest.mark.parametrize("market", list(MARKETS))
def test_inferred_bars_per_year_is_the_calendars(market: str) -> None:
    build, ballpark = MARKETS[market]
    ts, expected = build()
    got = infer_bars_per_year(ts)
    assert got == pytest.approx(expected, rel=0.01), (market, got, expected)
    assert got == pytest.approx(ballpark, rel=0.03)  # the round figures


def test_daily_equities_keep_the_252_convention() -> None:
    ts, _ = daily_equities()
    assert infer_bars_per_year(ts) == 252.0


def test_a_few_missing_bars_move_the_figure_by_their_share_only() -> None:
    ts, expected = hourly_fx()
    rng = np.random.default_rng(0)
    kept = np.sort(rng.choice(len(ts), size=len(ts) - len(ts) // 500, replace=False))  # 0.2 % missing
    assert infer_bars_per_year(ts[kept]) == pytest.approx(expected, rel=0.01)
    # and the partial first / last weeks: start on a Wednesday, end on a Tuesday
    assert infer_bars_per_year(ts[50:-30]) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("n", "step"), [(29, pd.Timedelta(days=1)), (300, pd.Timedelta(hours=1)),
                                         (13, pd.Timedelta(weeks=1))])
def test_short_data_refuses_inference_asking_for_the_explicit_value(n: int, step: pd.Timedelta) -> None:
    ts = pd.date_range("2024-01-01", periods=n, freq=step).as_unit("ns").asi8
    with pytest.raises(ConfigInvalid, match="set execution.bars_per_year explicitly") as info:
        infer_bars_per_year(ts)
    assert info.value.error_code == "CONFIG_INVALID" and info.value.context["field"] == "execution.bars_per_year"


def test_year_fractions_are_the_calendar_time_since_the_previous_bar() -> None:
    friday, monday = dt.datetime(2024, 1, 5, tzinfo=dt.UTC), dt.datetime(2024, 1, 8, tzinfo=dt.UTC)
    got = year_fractions(stamps([friday, monday, monday + dt.timedelta(hours=1)]))
    np.testing.assert_allclose(got, [0.0, 3 / 365.25, 1 / (24 * 365.25)])
    with pytest.raises(DataInvalid, match="increasing"):
        year_fractions(np.array([3, 2], np.int64))


@pytest.mark.parametrize("market", ["hourly_fx_24x5", "hourly_24_7"])
def test_buy_and_hold_annualized_figures_match_an_independent_calendar_formula(market: str) -> None:
    """CAGR, volatility and Sharpe of a buy-and-hold with the inferred B against the textbook figures built from
    the calendar alone: growth over the elapsed calendar years, per-bar std times sqrt(bars per calendar year)."""
    ts, bars_a_year = MARKETS[market][0]()
    n = len(ts)
    rng = np.random.default_rng(7)
    close = 1.1 * np.exp(np.cumsum(rng.normal(2e-6, 1e-3, n)))
    frame = pd.DataFrame({"ts": ts, "open": close.astype(np.float32), "high": close.astype(np.float32),
                          "low": close.astype(np.float32), "close": close.astype(np.float32),
                          "volume": np.ones(n, np.int64)})
    bpy = infer_bars_per_year(ts)
    execution = ExecutionParams(fee_bps=0.0, slippage_bps=0.0, bars_per_year=bpy)
    result = run_backtest(frame, np.ones(n, np.float32), execution)
    got = performance_metrics(result, bpy)
    r = result.returns
    held_years = n / bars_a_year  # the data's bars at the calendar's rate
    equity = result.equity["equity"].to_numpy(np.float64)
    cagr = (equity[-1] / equity[0]) ** (1 / held_years) - 1
    vol = float(np.std(r, ddof=1)) * math.sqrt(bars_a_year)
    sharpe = float(np.mean(r)) / float(np.std(r, ddof=1)) * math.sqrt(bars_a_year)
    assert got["cagr"] == pytest.approx(cagr, rel=0.01)
    assert got["volatility"] == pytest.approx(vol, rel=0.01)
    assert got["sharpe"] == pytest.approx(sharpe, rel=0.01)
