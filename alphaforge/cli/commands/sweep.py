"""`alphaforge sweep`: a grid of runs on a local process pool or a Dask cluster (see :mod:`alphaforge.runs.sweep`)."""

from __future__ import annotations

import argparse
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, print_json
from alphaforge.enums import RunStatus

if TYPE_CHECKING:  # the heavy modules load when the command runs, not for `alphaforge --help`
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from alphaforge.runs.sweep import PointResult, SweepResult

RANKED_BY_TITLE = {
    "oos_sharpe": "walk-forward out-of-sample Sharpe (oos_sharpe)",
    "sharpe": "full-sample Sharpe (sharpe; the config has no walk-forward)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a parameter grid (cartesian product) as runs on local processes or a Dask cluster; "
                      "completed points are reused",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="base run configuration: TOML or JSON")
    p.add_argument("--grid", action="append", required=True, metavar="KEY.PATH=V1,V2,…",
                   help="a grid axis, values parsed like --set values (e.g. strategy.params.fast=5,10,20); "
                        "repeatable, the grid is the cartesian product")
    p.add_argument("--data", required=True, metavar="FILE", help="OHLCV data: CSV or Parquet (workers must see "
                                                                 "the same path)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", dest="overrides",
                   help="override a value of the base config before expanding the grid; repeatable")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: the number of CPUs)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on the Dask distributed cluster at ADDRESS (e.g. tcp://host:8786; needs "
                            "`pip install 'alphaforge[dask]'`)")
    add_db_option(p)
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="feature cache directory shared by the workers (default: config features.cache_dir, "
                        "$ALPHAFORGE_CACHE_DIR, else alphaforge_cache/ beside a SQLite database)")
    add_json_option(p)
    p.set_defaults(handler=sweep_command)


class GridProgress:
    """One progress bar over the grid on a terminal; nothing at all when stdout is not a TTY."""

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.total = total
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> GridProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("{task.description}"), console=Console())
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int = 1, note: str = "") -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, description=note)

    def __call__(self, result: PointResult) -> None:
        state = "reused" if result.reused else result.status
        self.advance(1, f"{(result.run_hash or '')[:12]} {state}")


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k.removeprefix('strategy.params.')}={v}" for k, v in params.items())


def render_sweep(out: Console, result: SweepResult) -> None:
    from rich.table import Table

    table = Table(title=f"Sweep ranked by {RANKED_BY_TITLE[result.ranked_by]}", title_justify="left")
    for column in ("#", "params", "run", "status", "reused", "sharpe", "oos_sharpe"):
        table.add_column(column, justify="right" if column in ("#", "sharpe", "oos_sharpe") else "left")
    for rank, r in enumerate(result.runs, 1):
        table.add_row(str(rank), _params_text(r.params), (r.run_hash or "—")[:12], r.status,
                      "yes" if r.reused else "no", _fmt(r.sharpe), _fmt(r.oos_sharpe))
    out.print(table)
    for r in result.runs:
        if r.error:
            out.print(f"[bold red]failed[/bold red] {(r.run_hash or '')[:12]} ({_params_text(r.params)}): {r.error}")
    if result.skipped:
        skipped = Table(title=f"Skipped grid points ({len(result.skipped)})", title_justify="left")
        skipped.add_column("params")
        skipped.add_column("reason")
        for s in result.skipped:
            skipped.add_row(_params_text(s.params), s.reason)
        out.print(skipped)
    executed = sum(1 for r in result.runs if r.status == RunStatus.COMPLETED and not r.reused)
    reused = sum(1 for r in result.runs if r.reused)
    failed = sum(1 for r in result.runs if r.status != RunStatus.COMPLETED)
    out.print(f"{len(result.runs)} runs: {executed} executed, {reused} reused, {failed} failed; "
              f"{len(result.skipped)} skipped")


def sweep_command(args: argparse.Namespace) -> int:
    from alphaforge.config import apply_overrides, load_raw_config
    from alphaforge.runs.sweep import run_sweep
    from alphaforge.runs.sweep_grid import grid_configs

    raw = load_raw_config(args.config)
    if args.overrides:
        raw = apply_overrides(raw, args.overrides)
    configs = grid_configs(raw, args.grid)
    with GridProgress(len(configs), enabled=None if not args.json else False) as progress:
        result = run_sweep(db_url(args), args.data, configs, workers=args.workers, scheduler=args.scheduler,
                           cache_dir=args.cache_dir, progress=progress)
        progress.advance(len(result.skipped), "")
    if args.json:
        print_json(result.to_json())
    else:
        render_sweep(console(), result)
    return 0 if result.ok else 1
