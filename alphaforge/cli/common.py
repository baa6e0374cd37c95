"""Shared CLI plumbing: the --db option, output helpers (JSON or human)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", default=None,
        help="database URL (default: $ALPHAFORGE_DB_URL, else sqlite:///alphaforge.db in the working directory)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def db_url(args: argparse.Namespace) -> str:
    from alphaforge.db.urls import resolve_url

    return resolve_url(getattr(args, "db", None))


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def console() -> Console:
    """Human output on stdout; colours and progress only when stdout is a terminal."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)
