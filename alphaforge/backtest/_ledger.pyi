"""Type stub of the compiled ledger kernel (alphaforge/backtest/_ledger.c)."""

from typing import Any

def ledger(
    open: Any, close: Any, cum_close: Any, exposure: Any, initial_equity: float, cost_rate: float,
    borrow_rate: float, want_rows: bool, /,
) -> tuple[bytes, bytes | None]: ...
def returns(
    open: Any, close: Any, year_fraction: Any, exposure: Any, out: Any, initial_equity: float, cost_rate: float,
    borrow_rate: float, lo: float = ..., /,
) -> None: ...
