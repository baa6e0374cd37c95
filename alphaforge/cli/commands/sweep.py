"""`alphaforge sweep`: a grid of runs on a local process pool or a Dask cluster, recorded in a study
(:mod:`alphaforge.runs.sweep`, :mod:`alphaforge.runs.study`); `alphaforge sweep report SWEEP_ID|STUDY`: the
family statistics of a sweep or a study (:mod:`alphaforge.runs.family`)."""

from __future__ import annotations

import argparse
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, print_json
from alphaforge.enums import RunStatus
from alphaforge.errors import ConfigInvalid
from alphaforge.runs.family_params import BENCHMARKS, ReportParams

if TYPE_CHECKING:  # the heavy modules load when the command runs, not for `alphaforge --help`
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from alphaforge.runs.family import StoredReport
    from alphaforge.runs.sweep import PointResult, SweepResult

RANKED_BY_TITLE = {
    "oos_sharpe": "walk-forward out-of-sample Sharpe (oos_sharpe)",
    "sharpe": "full-sample Sharpe (sharpe; the config has no walk-forward)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a parameter grid (cartesian product) as runs on local processes or a Dask cluster, "
                      "recorded in a study (completed points are reused); `sweep report SWEEP_ID|STUDY`: Deflated "
                      "Sharpe, PBO, SPA / Reality Check / StepM of the family",
        usage="alphaforge sweep --config FILE --grid KEY.PATH=V1,V2,… --data FILE [--study NAME] [options]\n"
              "       alphaforge sweep report SWEEP_ID|STUDY [--benchmark buy_and_hold] [--reps N] [--blocks S] "
              "[--alpha A] [--data FILE] [--json]\n       alphaforge sweep report --list",
    )
    p.add_argument("action", nargs="?", choices=("report",), help="report: the family statistics of a sweep "
                                                                  "or a study")
    p.add_argument("target", nargs="?", metavar="SWEEP_ID|STUDY", help="with report: a sweep id (or unique "
                                                                       "prefix) or a study name")
    p.add_argument("--config", metavar="FILE", help="base run configuration: TOML or JSON")
    p.add_argument("--grid", action="append", metavar="KEY.PATH=V1,V2,…",
                   help="a grid axis, values parsed like --set values (e.g. strategy.params.fast=5,10,20); "
                        "repeatable, the grid is the cartesian product")
    p.add_argument("--data", metavar="FILE", help="OHLCV data: CSV or Parquet (workers must see the same path); "
                                                  "with report: the study's data file when it moved")
    p.add_argument("--study", metavar="NAME", default=None,
                   help="the study to record the sweep in (default: SYMBOL/STRATEGY/DATA_HASH[:12]); a study is "
                        "one dataset and one strategy")
    p.add_argument("--benchmark", default="buy_and_hold", choices=BENCHMARKS, help="report: the benchmark of "
                                                                                    "SPA / Reality Check / StepM")
    p.add_argument("--reps", type=int, default=ReportParams.reps, metavar="N",
                   help="report: bootstrap repetitions (default %(default)s)")
    p.add_argument("--blocks", type=int, default=ReportParams.n_blocks, metavar="S",
                   help="report: PBO blocks, even, >= 4 (default %(default)s)")
    p.add_argument("--alpha", type=float, default=ReportParams.alpha, metavar="A",
                   help="report: StepM family-wise level (default %(default)s)")
    p.add_argument("--list", action="store_true", help="report: list the studies and their sweeps")
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


def _missing(args: argparse.Namespace, names: tuple[str, ...], what: str) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n)]
    if missing:
        raise ConfigInvalid(f"sweep: {what} needs {', '.join(missing)}", field=missing[0].lstrip("-"))


def sweep_command(args: argparse.Namespace) -> int:
    from alphaforge.config import apply_overrides, load_raw_config
    from alphaforge.runs.study import run_family_sweep
    from alphaforge.runs.sweep_grid import grid_configs

    if args.action == "report":
        return report_command(args)
    if args.target is not None:
        raise ConfigInvalid(f"sweep: unexpected argument {args.target!r} (did you mean `sweep report "
                            f"{args.target}`?)", field="sweep")
    _missing(args, ("config", "grid", "data"), "a grid run")
    raw = load_raw_config(args.config)
    if args.overrides:
        raw = apply_overrides(raw, args.overrides)
    total = len(grid_configs(raw, args.grid))
    with GridProgress(total, enabled=None if not args.json else False) as progress:
        done = run_family_sweep(db_url(args), args.data, raw, args.grid, study=args.study, workers=args.workers,
                                scheduler=args.scheduler, cache_dir=args.cache_dir, progress=progress)
        progress.advance(len(done.result.skipped), "")
    if args.json:
        print_json(done.to_json())
    else:
        out = console()
        render_sweep(out, done.result)
        out.print(f"sweep {done.family.sweep_id} in study {done.family.study!r}: "
                  f"`alphaforge sweep report {done.family.sweep_id[:12]}` or "
                  f"`alphaforge sweep report '{done.family.study}'`")
    return 0 if done.result.ok else 1


def report_command(args: argparse.Namespace) -> int:
    from alphaforge.db.store import Store
    from alphaforge.runs.family import family_report, list_families

    store = Store(db_url(args))
    if args.list:
        families = list_families(store)
        if args.json:
            print_json({"studies": families})
        else:
            render_families(console(), families)
        return 0
    if not args.target:
        raise ConfigInvalid("sweep report: give a sweep id or a study name (list them with `alphaforge sweep report "
                            "--list`)", field="sweep")
    params = ReportParams(benchmark=args.benchmark, n_blocks=args.blocks, reps=args.reps, alpha=args.alpha)
    stored = family_report(store, args.target, params, data_path=args.data)
    if args.json:
        print_json(stored.report)
    else:
        render_report(console(), stored)
    return 0


def render_families(out: Console, families: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not families:
        out.print("no sweeps recorded yet: run `alphaforge sweep`")
        return
    table = Table("study", "strategy", "data", "sweep", "points", "status", title="Studies", title_justify="left")
    for f in families:
        for i, w in enumerate(f["sweeps"] or [{"sweep_id": "—", "n_points": 0, "status": "—"}]):
            table.add_row(f["study"] if i == 0 else "", f["strategy"] if i == 0 else "",
                          f["data_hash"][:12] if i == 0 else "", w["sweep_id"][:12], str(w["n_points"]), w["status"])
    out.print(table)


def render_report(out: Console, stored: StoredReport) -> None:
    from rich.table import Table

    from alphaforge.runs.family import verdict

    r = stored.report
    table = Table("statistic", "value", "meaning", title=f"Family report: study {r['study']!r}, "
                  f"{len(r['sweep_ids'])} sweep(s), {r['n_trials']} trials", title_justify="left")
    best = r["best"]
    table.add_row("best point", f"{best['run_hash'][:12]} ({_params_text(best['params'])})",
                  f"highest Sharpe, {_fmt(best['sharpe'])} (annualized)")
    table.add_row("PSR", _fmt(r["psr"]), "P(true Sharpe > 0) for the best point alone")
    table.add_row("DSR", _fmt(r["dsr"]), f"the same, deflated for {r['n_trials']} trials (>= 0.95 to trust it)")
    table.add_row("MinTRL", "—" if r["min_trl_years"] is None else f"{r['min_trl_years']:.2f} years",
                  "track record needed for 95% confidence against the deflated threshold")
    pbo = r["pbo"]
    table.add_row("PBO", _fmt(pbo["value"]), f"P(best in-sample is below median out of sample), "
                  f"{pbo['n_splits']} CSCV splits; degradation slope {_fmt(pbo['degradation_slope'])}")
    spa = r["spa"]
    table.add_row("SPA p (l/c/u)", f"{_fmt(spa['pvalue_lower'])} / {_fmt(spa['pvalue_consistent'])} / "
                  f"{_fmt(spa['pvalue_upper'])}", f"H0: no point beats {spa['benchmark']} (Hansen 2005)")
    table.add_row("Reality Check p", _fmt(spa["reality_check_pvalue"]), "White (2000)")
    table.add_row(f"StepM (alpha {r['stepm']['alpha']:g})", str(len(r["stepm"]["significant"])),
                  "points that beat the benchmark, family-wise (Romano–Wolf)")
    out.print(table)
    if not pbo.get("informative", True):
        out.print(f"[yellow]PBO not informative:[/yellow] {pbo.get('note')}")
    out.print(("[dim](stored report, the family has not changed)[/dim] " if stored.reused else "") + verdict(r))
