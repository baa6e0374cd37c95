"""`alphaforge runs plot`: equity with drawdown, the bootstrap Sharpe CI, and the walk-forward folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigInvalid


def plot_run(details: dict[str, Any], equity: pd.DataFrame, out: str | Path) -> Path:
    """Render the run to a PNG at ``out``; needs the optional extra ``plot`` (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigInvalid("plotting needs matplotlib: pip install 'alphaforge[plot]'") from exc
    times = pd.to_datetime(equity["ts"].to_numpy(), utc=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=(3, 1))
    top.plot(times, equity["equity"].to_numpy(), lw=1.0, color="tab:blue", label="equity")
    top.set_ylabel("equity")
    validation = details.get("validation") or {}
    payload = validation.get("payload") or {}
    title = f"{details['config'].get('symbol')} · {details['config']['strategy']['name']} · " \
            f"{details['run_hash'][:12]}"
    low, high = validation.get("bootstrap_sharpe_low"), validation.get("bootstrap_sharpe_high")
    if low is not None and high is not None:
        method = validation.get("bootstrap_method")
        title += f"\nSharpe {details['metrics'].get('sharpe', float('nan')):.2f}, " \
                 f"{payload.get('bootstrap', {}).get('ci', 0.95):.0%} CI [{low:.2f}, {high:.2f}] ({method})"
    for fold in (payload.get("walk_forward") or {}).get("folds", []):
        start, end = (pd.to_datetime(fold[k], utc=True) for k in ("start_ts", "end_ts"))
        colour = "tab:green" if (fold.get("oos_return") or 0) > 0 else "tab:red"
        top.axvspan(start, end, color=colour, alpha=0.08)
        top.axvline(start, color="grey", lw=0.5, ls=":")
    top.set_title(title, fontsize=10)
    top.legend(loc="upper left")
    bottom.fill_between(times, -np.asarray(equity["drawdown"].to_numpy()), 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
