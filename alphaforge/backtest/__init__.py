"""Backtesting: the strategy registry (features → target exposure) and the engine (fills, costs, trades, equity)."""

from alphaforge.backtest.engine import (
    EQUITY_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
    ExecutionParams,
    equity_returns,
    run_backtest,
    simulate,
    strategy_returns,
)
from alphaforge.backtest.strategies import (
    STRATEGIES,
    FeatureRequest,
    Strategy,
    compute_features,
    get_strategy,
    resolve_params,
    target_exposure,
)

__all__ = [
    "EQUITY_COLUMNS",
    "STRATEGIES",
    "TRADE_COLUMNS",
    "BacktestResult",
    "ExecutionParams",
    "FeatureRequest",
    "Strategy",
    "compute_features",
    "equity_returns",
    "get_strategy",
    "resolve_params",
    "run_backtest",
    "simulate",
    "strategy_returns",
    "target_exposure",
]
