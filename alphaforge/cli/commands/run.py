"""`alphaforge run` and `alphaforge demo`: the main job."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, print_json
from alphaforge.enums import BootstrapMethod, CIWidthMode, HeadlineMetric, WalkForwardMode
from alphaforge.errors import ConfigInvalid

if TYPE_CHECKING:
    from alphaforge.config import RunConfig
    from alphaforge.db.store import Store
    from alphaforge.runs.queries import RunOutcome

DEMO_DATA = "demo_ohlcv.csv"
DEMO_CONFIG = "demo_config.toml"
# enumerated values come from alphaforge.enums, like everywhere else (the text is unchanged)
DEMO_CONFIG_TEXT = f"""\
# AlphaForge demo configuration (see the README for every key).
symbol = "DEMO"
seed = 42

[strategy]
name = "sma_cross"
params = {{ fast = 10, slow = 50 }}

[execution]
initial_equity = 100000.0
fee_bps = 1.0
slippage_bps = 0.5
borrow_bps_annual = 25.0
allow_short = true

[validation.permutation]
n = 200

[validation.bootstrap]
n = 1000
method = "{BootstrapMethod.HADJ_BB}"
ci = 0.95
jitter = 1

[validation.walk_forward]
folds = 5
mode = "{WalkForwardMode.OPTIMIZE}"
grid = {{ fast = [5, 10, 20], slow = [50, 100] }}

[validation.ci_width]
{HeadlineMetric.SHARPE} = 2.0
mode = "{CIWidthMode.WARN}"
"""


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a configuration on an OHLCV file (reused if already done)")
    run.add_argument("--data", required=True, metavar="FILE", help="OHLCV data: CSV or Parquet")
    run.add_argument("--config", required=True, metavar="FILE", help="run configuration: TOML or JSON")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", dest="overrides",
                     help="override a config value (changes the run_hash); repeatable")
    _common(run)
    run.set_defaults(handler=run_command)
    demo = sub.add_parser("demo", help="write a synthetic dataset and a sample config next to the database, "
                                       "run them, print the summary")
    demo.add_argument("--bars", type=int, default=5000, metavar="N", help="number of bars (default 5000)")
    _common(demo)
    demo.set_defaults(handler=demo_command)


def _common(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="feature cache directory (default: config features.cache_dir, "
                             "$ALPHAFORGE_CACHE_DIR, else alphaforge_cache/ beside a SQLite database)")
    add_json_option(parser)


def _execute(args: argparse.Namespace, config: RunConfig, data: str | os.PathLike[str], store: Store) -> RunOutcome:
    from alphaforge.runs.pipeline import Pipeline

    cache_dir = args.cache_dir or config.features.cache_dir
    if args.json:  # no progress display: rich's progress machinery is not even imported
        return Pipeline(store, cache_dir=cache_dir).run(config, data)
    from alphaforge.cli.render import PhaseProgress

    with PhaseProgress(enabled=None) as progress:
        return Pipeline(store, cache_dir=cache_dir, progress=progress).run(config, data)


def _print(args: argparse.Namespace, outcome: RunOutcome) -> int:
    summary = outcome.to_json()
    if args.json:
        print_json(summary)
    else:
        from alphaforge.cli.render import render_summary

        render_summary(console(), summary)
    return 0


def run_command(args: argparse.Namespace) -> int:
    # First the raw config and an existing database only: an identical resubmission of a completed run is answered
    # from recorded input digests without importing the compute stack (alphaforge.runs.resubmit). Otherwise the
    # config is validated before the database is opened or created (a usage error never touches it).
    from alphaforge.config_raw import apply_overrides, load_raw_config
    from alphaforge.db.store import Store
    from alphaforge.runs.resubmit import find_completed, remember_config

    raw: dict[str, Any] = load_raw_config(args.config)
    if args.overrides:
        raw = apply_overrides(raw, args.overrides)
    existing = Store.existing(db_url(args))
    reused = None if existing is None else find_completed(existing, raw, args.data)
    if reused is not None:
        return _print(args, reused)
    from alphaforge.config import load_config

    config = load_config(raw)
    if not Path(args.data).exists():
        raise ConfigInvalid(f"--data {args.data}: no such file")
    store = existing or Store(db_url(args))
    outcome = _execute(args, config, args.data, store)
    remember_config(store, raw, config)  # once its run stands: a failed submission leaves no row behind
    return _print(args, outcome)


def demo_command(args: argparse.Namespace) -> int:
    if args.bars < 300:
        raise ConfigInvalid(f"--bars {args.bars}: the demo needs at least 300 bars")
    from alphaforge.config import load_config, load_raw_config
    from alphaforge.data.synthetic import synthetic_ohlcv
    from alphaforge.db.store import Store
    from alphaforge.runs.resubmit import remember_config

    store = Store(db_url(args))
    database = store.engine.url.database
    here = Path(database).resolve().parent if store.dialect == "sqlite" and database and \
        database != ":memory:" else Path.cwd()
    data_path, config_path = here / DEMO_DATA, here / DEMO_CONFIG
    synthetic_ohlcv(args.bars).to_csv(data_path, index=False)
    config_path.write_text(DEMO_CONFIG_TEXT, encoding="utf-8")
    if not args.json:
        console().print(f"demo data {data_path} ({args.bars} bars), config {config_path}")
    raw = load_raw_config(config_path)
    config = load_config(raw)
    outcome = _execute(args, config, data_path, store)
    remember_config(store, raw, config)  # `alphaforge run` on the demo's files is then answered from the database
    return _print(args, outcome)
