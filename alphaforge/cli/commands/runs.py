"""`alphaforge runs list|show|export|plot|recover|delete|gc`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, err_console, print_json
from alphaforge.enums import RunStatus, values
from alphaforge.errors import ConfigInvalid

if TYPE_CHECKING:
    from alphaforge.db.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="stored runs: list, show, export, plot, recover, delete, gc")
    actions = runs.add_subparsers(dest="runs_command", required=True,
                                  metavar="{list,show,export,plot,recover,delete,gc}")
    ls = actions.add_parser("list", help="the most recently updated runs")
    ls.add_argument("--status", choices=values(RunStatus))
    ls.add_argument("--limit", type=int, default=20, metavar="N")
    show = actions.add_parser("show", help="everything about one run (a unique run_hash prefix works)")
    show.add_argument("run", metavar="RUN")
    export = actions.add_parser("export", help="trades and equity as parquet plus a manifest with sha256")
    export.add_argument("run", metavar="RUN")
    export.add_argument("--out", required=True, metavar="DIR")
    plot = actions.add_parser("plot", help="equity with drawdown, bootstrap CI and walk-forward folds (PNG)")
    plot.add_argument("run", metavar="RUN")
    plot.add_argument("--out", required=True, metavar="FILE.png")
    recover = actions.add_parser(
        "recover", help="fail runs whose worker died (stale heartbeat): RUN_ABANDONED, partial rows removed")
    recover.add_argument("run", metavar="RUN", nargs="?", help="one run (default: every stale run)")
    recover.add_argument("--stale-after", type=float, default=None, metavar="SECONDS",
                         help="heartbeat age that makes a running run stale (default $ALPHAFORGE_STALE_AFTER_S "
                              "or 60)")
    delete = actions.add_parser(
        "delete", help="delete runs with every row that belongs to them (one transaction, all or nothing)")
    delete.add_argument("runs", metavar="RUN", nargs="+", help="run_hash or a unique prefix")
    delete.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation (required when stdin is not a terminal)")
    collect = actions.add_parser(
        "gc", help="remove feature-cache entries no stored run references, orphan cache files, and old failed runs")
    collect.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    collect.add_argument("--failed-older-than", type=float, default=None, metavar="DAYS",
                         help="also delete failed runs last updated more than DAYS ago")
    collect.add_argument("--cache-dir", metavar="DIR", default=None,
                         help="feature cache directory (default: $ALPHAFORGE_CACHE_DIR, else alphaforge_cache/ "
                              "beside a SQLite database, else ./alphaforge_cache)")
    collect.add_argument("--only-this-database", action="store_true",
                         help="treat the cache directory as this database's alone: also remove files that other "
                              "databases registered in it may use (by default, while another database uses the "
                              "directory, only this database's rows are removed and every file is kept)")
    for p in (ls, show, export, plot, recover, delete, collect):
        add_db_option(p)
        add_json_option(p)
    runs.set_defaults(handler=run)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace) -> int:
    # imported here, not at module level: `alphaforge --help` must not pay for the database layer
    from alphaforge.db.store import Store
    from alphaforge.runs.queries import list_runs

    store = Store(db_url(args))
    out = console()
    if args.runs_command == "list":
        rows = list_runs(store, status=args.status, limit=args.limit)
        if args.json:
            print_json({"runs": rows})
            return 0
        from rich.table import Table

        table = Table("run", "status", "symbol", "strategy", "sharpe", "cagr", "updated (UTC)")
        for r in rows:
            table.add_row(r["run_hash"][:12], r["status"], str(r["symbol"]), str(r["strategy"]),
                          "—" if r["sharpe"] is None else f"{r['sharpe']:.3f}",
                          "—" if r["cagr"] is None else f"{r['cagr']:.3%}", _when(r["updated_at"]))
        out.print(table if rows else "no runs yet: try `alphaforge demo`")
        return 0
    from alphaforge.cli.render import render_summary
    from alphaforge.runs.queries import export_run, show_run
    from alphaforge.runs.service import RunService

    if args.runs_command == "show":
        details = show_run(store, args.run)
        if args.json:
            print_json(details)
            return 0
        render_summary(out, {**details, "reused": False})
        bpy, methodology = details["bars_per_year"], details["methodology"]
        out.print(f"bars_per_year {bpy['value'] if bpy['value'] is not None else '—'} ({bpy['source']})")
        out.print("methodology " + (methodology if isinstance(methodology, str)
                                    else ", ".join(f"{k} {v}" for k, v in sorted(methodology.items()))))
        for m in details.get("sweeps", []):
            out.print(f"point {m['point_index']} of sweep {m['sweep_id'][:12]} in study {m['study']!r}")
        for e in details["errors"]:
            out.print(f"[red]error[/red] {_when(e['ts'])} phase {e['phase']}: [{e['error_code']}] {e['message']}")
        return 0
    if args.runs_command == "export":
        manifest = export_run(store, args.run, args.out)
        if args.json:
            print_json({"out": str(args.out), **manifest})
        else:
            for name, info in manifest["files"].items():
                out.print(f"{args.out}/{name}: {info['rows']} rows, sha256 {info['sha256']}")
        return 0
    if args.runs_command == "delete":
        return _delete(store, args)
    if args.runs_command == "gc":
        return _gc(store, args)
    if args.runs_command == "recover":
        service = RunService(store)
        target = service.resolve(args.run) if args.run else None
        if args.stale_after is not None and args.stale_after < 0:
            raise ConfigInvalid(f"--stale-after {args.stale_after}: expected seconds >= 0")
        recovered = service.recover(target, stale_after=args.stale_after)
        if args.json:
            print_json({"recovered": recovered})
        else:
            out.print("\n".join(f"recovered {h} (RUN_ABANDONED)" for h in recovered) or "no stale runs")
        return 0
    from alphaforge.cli.plot import plot_run  # matplotlib only when plotting

    details = show_run(store, args.run)
    path = plot_run(details, store.read_equity(details["run_hash"]), args.out)
    if args.json:
        print_json({"run_hash": details["run_hash"], "out": str(path)})
    else:
        out.print(f"wrote {path}")
    return 0


def _delete(store: Store, args: argparse.Namespace) -> int:
    """Delete after a yes on the terminal (the question and the list go to stderr), or with --yes."""
    from rich.prompt import Confirm

    from alphaforge.cli.render import render_deleted
    from alphaforge.runs.delete import delete_runs
    from alphaforge.runs.service import RunService

    if not args.yes:
        service = RunService(store)
        targets = [service.get(service.resolve(r)) for r in args.runs]  # RUN_NOT_FOUND before asking
        if not sys.stdin.isatty():
            raise ConfigInvalid("refusing to delete runs without confirmation: stdin is not a terminal; "
                                "pass --yes to delete without asking", field="yes")
        ask = err_console()
        for r in targets:
            ask.print(f"{r.run_hash}  {r.status}  {r.config.get('symbol')}  {_when(r.updated_at)}")
        if not Confirm.ask(f"delete these {len(targets)} run(s) with all their rows?", console=ask,
                           default=False):
            ask.print("nothing deleted")
            return 1
    report = delete_runs(store, args.runs).to_json()
    if args.json:
        print_json(report)
    else:
        render_deleted(console(), report)
    return 0


def _gc(store: Store, args: argparse.Namespace) -> int:
    from alphaforge.cli.render import render_gc
    from alphaforge.runs.cache_gc import gc
    from alphaforge.runs.queries import default_cache_dir

    report = gc(store, args.cache_dir or default_cache_dir(store), dry_run=args.dry_run,
                failed_older_than_days=args.failed_older_than,
                only_this_database=args.only_this_database).to_json()
    if args.json:
        print_json(report)
    else:
        render_gc(console(), report)
    return 0
