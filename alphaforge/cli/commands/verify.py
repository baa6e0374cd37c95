"""`alphaforge verify [RUN | --all] [--export DIR]`: re-check stored runs against what they recorded."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, print_json
from alphaforge.errors import ConfigInvalid, IntegrityMismatch

if TYPE_CHECKING:  # the database layer loads when the command runs, not for `alphaforge --help`
    from alphaforge.db.store import Store
    from alphaforge.runs.verify import VerifyReport

DESCRIPTION = """\
Re-derive and compare, without recomputing or writing anything: the run_hash from the stored config and
data_hash, the seeds, every feature-cache parquet file the manifest references (sha256 against the manifest
and the features_cache row), one equity row per bar, the trade count, the validation row and its coherence
(p-value in (0, 1], CI low <= high, bootstrap method metadata), equity timestamps strictly increasing.
With --export DIR also re-hash an `alphaforge runs export` directory against its manifest.json and the run."""

EPILOG = """\
exit status:
  0  every check holds
  1  a check failed: a mismatch between what a run recorded and what is stored (the report names it; a
     one-line INTEGRITY_MISMATCH summary goes to stderr)
  2  usage: unknown or ambiguous RUN, bad options, no such export directory
  4  database unreachable or schema mismatch"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-check stored runs: hashes, feature cache files, row counts (exit 1 on a mismatch)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="run_hash or a unique prefix")
    p.add_argument("--all", action="store_true", dest="all_runs", help="verify every completed run")
    add_db_option(p)
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="feature cache directory the runs used (default: $ALPHAFORGE_CACHE_DIR, else "
                        "alphaforge_cache/ beside a SQLite database, else ./alphaforge_cache)")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="also verify this `alphaforge runs export` directory (of RUN, or of the run it names)")
    add_json_option(p)
    p.set_defaults(handler=run)


def _reports(args: argparse.Namespace, store: Store) -> list[VerifyReport]:
    from alphaforge.runs.service import RunService
    from alphaforge.runs.verify import read_export_manifest, verify_all, verify_export, verify_run

    if args.all_runs and args.run:
        raise ConfigInvalid("give either RUN or --all, not both")
    if args.all_runs and args.export:
        raise ConfigInvalid("--export verifies one run's export: give RUN (or only --export), not --all")
    if args.all_runs:
        return verify_all(store, cache_dir=args.cache_dir)
    if args.run is None and args.export is None:
        raise ConfigInvalid("give RUN (a run_hash or unique prefix), --all, or --export DIR")
    if args.run is not None:
        run_hash = RunService(store).resolve(args.run)
    else:
        named = read_export_manifest(args.export).get("run_hash")
        if not isinstance(named, str):
            raise ConfigInvalid(f"--export {args.export!r}: manifest.json names no run_hash; give RUN too")
        run_hash = RunService(store).resolve(named)
    report = verify_run(store, run_hash, cache_dir=args.cache_dir)
    if args.export is not None:
        report.extend(verify_export(args.export, store=store, run_hash=run_hash))
    return [report]


def _render(reports: list[VerifyReport]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    if not reports:
        out.print("no completed runs to verify")
    for report in reports:
        table = Table("", "check", "detail", title=Text(f"run {report.run_hash}"), title_justify="left")
        for c in report.checks:
            mark = Text("✓", style="green") if c.ok else Text("✗", style="red")
            table.add_row(mark, Text(c.check), Text(c.detail))
        out.print(table)
    bad = sum(len(r.failures) for r in reports)
    total = sum(len(r.checks) for r in reports)
    out.print(f"{len(reports)} run(s), {total} checks: " + ("all hold" if not bad else f"[red]{bad} failed[/red]"))


def run(args: argparse.Namespace) -> int:
    from alphaforge.db.store import Store

    store = Store(db_url(args))
    reports = _reports(args, store)
    ok = all(r.ok for r in reports)
    if args.json:
        print_json({"runs": [r.to_json() for r in reports], "ok": ok})
    else:
        _render(reports)
    if not ok:
        failed = [(r.run_hash, c) for r in reports for c in r.failures]
        run_hash, first = failed[0]
        raise IntegrityMismatch(
            f"verify: {len(failed)} check(s) failed in {sum(not r.ok for r in reports)} run(s); first: run "
            f"{str(run_hash)[:12]} {first.check}: {first.detail}",
            failed=[c.check for _, c in failed],
        )
    return 0
