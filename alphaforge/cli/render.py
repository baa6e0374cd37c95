"""Human output for runs: the summary tables, the per-phase progress display, and what cleanup removed."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from alphaforge.enums import PHASES

PERFORMANCE_ORDER = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar",
                     "turnover", "n_trades", "win_rate", "profit_factor", "exposure")


class PhaseProgress:
    """A progress bar per phase on a terminal; nothing at all when stdout is not a TTY."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> PhaseProgress:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description:<11}"), BarColumn(), TimeElapsedColumn(),
                console=Console(),
            )
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, phase: str, event: str) -> None:
        if self._progress is None:
            return
        if event == "start":
            self._tasks[phase] = self._progress.add_task(phase, total=1)
        elif phase in self._tasks:
            self._progress.update(self._tasks[phase], completed=1)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, _fmt(value))
    return table


def render_summary(console: Console, outcome: dict[str, Any]) -> None:
    """Print the summary of a run (the same dict `--json` prints)."""
    reused = " (reused: stored result, nothing recomputed)" if outcome["reused"] else ""
    console.print(f"[bold]run[/bold] {outcome['run_hash']}  status: {outcome['status']}{reused}")
    console.print(f"data_hash {outcome['data_hash']}  seed_root {outcome['seed_root']}")
    metrics = outcome["metrics"]
    ordered = [k for k in PERFORMANCE_ORDER if k in metrics] + sorted(set(metrics) - set(PERFORMANCE_ORDER))
    console.print(_kv_table("Performance", [(k, metrics[k]) for k in ordered]))
    validation = outcome.get("validation")
    if validation:
        payload = validation.get("payload", {})
        block = validation.get("bootstrap_block_length")
        method = validation.get("bootstrap_method")
        fallback = " (fallback)" if validation.get("bootstrap_fallback") else ""
        rows: list[tuple[str, Any]] = [
            ("permutation p-value", validation.get("permutation_pvalue")),
            ("Sharpe CI", f"[{_fmt(validation.get('bootstrap_sharpe_low'))}, "
                          f"{_fmt(validation.get('bootstrap_sharpe_high'))}]"),
            ("CAGR CI", f"[{_fmt(validation.get('bootstrap_cagr_low'))}, "
                        f"{_fmt(validation.get('bootstrap_cagr_high'))}]"),
            ("bootstrap", f"{method}{fallback}" + (f", block length {block}" if block else "")),
            ("verdict", payload.get("verdict")),
        ]
        wf = payload.get("walk_forward")
        if wf:
            rows.append(("walk-forward", f"{len(wf.get('folds', []))} folds ({wf.get('mode')}), OOS Sharpe "
                                         f"{_fmt(wf.get('oos_sharpe'))}, positive folds "
                                         f"{_fmt(wf.get('positive_fraction'))}"))
        console.print(_kv_table("Robustness", rows))
    console.print(_kv_table("Anomalies", sorted(outcome["anomaly_counters"].items())))
    phases = outcome.get("phases", {})
    ordered_phases = [p for p in PHASES if p in phases] + [p for p in phases if p not in PHASES]
    console.print(_kv_table("Phases (ms)", [(p, phases[p]) for p in ordered_phases]))


def render_deleted(console: Console, report: dict[str, Any]) -> None:
    """Print what `runs delete` removed (the dict `--json` prints): the runs, then the rows per table."""
    runs = report["runs"]
    console.print(f"deleted {len(runs)} run(s): " + ", ".join(f"{r['run_hash'][:12]} ({r['status']})" for r in runs))
    console.print(_kv_table("Rows removed", sorted(report["rows"].items())))


def _bytes(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def render_gc(console: Console, report: dict[str, Any]) -> None:
    """Print what `runs gc` removed or, with --dry-run, would remove (the dict `--json` prints)."""
    verb = "would remove" if report["dry_run"] else "removed"
    failed = report["failed_runs"]
    if failed is not None:
        console.print(f"failed runs: {verb} {len(failed['runs'])}")
        if failed["runs"]:
            console.print(_kv_table("Rows", sorted(failed["rows"].items())))
    removed = report["removed"]
    if removed:
        table = Table("kind", "meta_hash", "indicator", "files", "bytes", title=f"Feature cache ({verb})",
                      title_justify="left")
        for r in removed:
            table.add_row(r["kind"], (r["meta_hash"] or "—")[:12], r["indicator"] or "—", str(len(r["files"])),
                          str(r["bytes"]))
        console.print(table)
    if report["busy"]:
        console.print(f"skipped {len(report['busy'])} entries being built right now (run gc again later)")
    if report["shared_with"]:
        console.print(f"the cache directory is shared with {len(report['shared_with'])} other database(s) "
                      f"({', '.join(report['shared_with'])}): only this database's rows are removed, every file is "
                      "kept (--only-this-database removes files too)")
    reclaimed = "to reclaim" if report["dry_run"] else "reclaimed"
    console.print(f"feature cache {report['cache_dir']}: {verb} {report['rows_removed']} features_cache rows and "
                  f"{sum(len(r['files']) for r in removed)} files, {_bytes(report['bytes_reclaimed'])} "
                  f"({report['bytes_reclaimed']} bytes) {reclaimed}")
