"""The `alphaforge` command line.

Exit codes: 0 ok, 1 internal error, 2 usage or configuration error, 3 data error, 4 database or schema error.
Errors print one line (what is wrong and what to do) on stderr; ``--debug`` adds the traceback. Database
failures arrive already typed (the Store translates them for every caller, :mod:`alphaforge.db.failures`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import traceback
from collections.abc import Sequence

from alphaforge._version import __version__
from alphaforge.cli.commands import db, run, runs, sweep, ui, verify
from alphaforge.errors import AlphaForgeError

# The console script's collector threshold for new objects (CPython's default is 700): importing SQLAlchemy
# and mapping the models allocates hundreds of thousands of long-lived objects, which the default makes the
# collector walk again and again; a command's own work (numpy arrays, a few rows) hardly allocates.
_GEN0_THRESHOLD = 10_000
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_DATA, EXIT_DATABASE = 0, 1, 2, 3, 4
COMMANDS = (run, runs, db, verify, sweep, ui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alphaforge",
        description="Deterministic backtest research engine: every run reproducible, stored in a real database.",
    )
    parser.add_argument("--version", action="version", version=f"alphaforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except AlphaForgeError as exc:
        _report(args, f"error [{exc.error_code}]: {_one_line(exc.message)}")
        return exc.exit_code
    except KeyboardInterrupt:
        _report(args, "interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        _report(args, f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug "
                      "for the traceback, and report it)")
        return EXIT_INTERNAL


def _report(args: argparse.Namespace, line: str) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc()
    db_arg = getattr(args, "db", None)
    if db_arg:
        from alphaforge.db.urls import mask_url

        line = line.replace(db_arg, mask_url(db_arg))
    sys.stderr.write(line + "\n")


def entry() -> None:
    """The ``alphaforge`` console script: :func:`main` in a process that ends as soon as it has answered.

    It collects cyclic garbage less often while the libraries load, and at the end it closes every database
    connection and helper itself (a SQLite file is checkpointed, nothing is left to the teardown), then
    freezes what is left so that the interpreter's exit does not walk the whole heap one last time. Together
    that is ~0.15 s of a 0.5 s `runs list`. :func:`main` itself leaves the process's settings alone (tests and
    library callers run it in process).
    """
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)
    code = main()
    per_process = sys.modules.get("alphaforge.db.per_process")  # None: the command opened no database
    if per_process is not None:
        per_process.dispose_everything()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
