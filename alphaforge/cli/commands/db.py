"""`alphaforge db upgrade|current|downgrade`."""

from __future__ import annotations

import argparse

from alphaforge.cli.common import add_db_option, add_json_option, console, db_url, print_json


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema: upgrade, current, downgrade")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="{upgrade,current,downgrade}")
    up = actions.add_parser("upgrade", help="migrate the database to the newest schema (or --to REV)")
    up.add_argument("--to", default="head", metavar="REV", help="target revision (default: head)")
    cur = actions.add_parser("current", help="show the database's schema revision and the code's")
    down = actions.add_parser("downgrade", help="migrate the database down (default: one revision)")
    down.add_argument("--to", default="-1", metavar="REV", help="target revision, -1, or base (default: -1)")
    for p in (up, cur, down):
        add_db_option(p)
        add_json_option(p)
    db.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from alphaforge.db import migrate
    from alphaforge.db.store import Store

    store = Store(db_url(args), ensure_schema=False)
    before = store.schema_revision()
    if args.db_command == "upgrade":
        migrate.upgrade(store.engine, args.to)
    elif args.db_command == "downgrade":
        migrate.downgrade(store.engine, args.to)
    after = store.schema_revision()
    head = f"{migrate.SCHEMA_VERSION:04d}"
    report = {"database": store.masked_url, "revision": after, "head": head, "previous": before,
              "up_to_date": after == head}
    if args.json:
        print_json(report)
        return 0
    out = console()
    if args.db_command == "current":
        state = "up to date" if after == head else f"code expects {head}"
        out.print(f"{store.masked_url}: revision {after or '(empty)'} ({state})")
    else:
        out.print(f"{store.masked_url}: {before or '(empty)'} -> {after or '(empty)'} (head {head})")
    return 0
