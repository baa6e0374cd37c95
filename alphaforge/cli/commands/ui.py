"""`alphaforge ui`: serve the read-only dashboard on a local port and print its URL.

Binds 127.0.0.1 unless ``--host`` says otherwise; any other host prints a warning that the dashboard has no
authentication (anyone who reaches the port reads every run). The database is opened read-only and its
schema checked before the server starts, so a wrong URL fails at once with the usual one-line error.
"""

from __future__ import annotations

import argparse
import ipaddress

from alphaforge.cli.common import add_db_option, db_url, err_console
from alphaforge.errors import ConfigInvalid

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="the read-only results dashboard in the browser (needs alphaforge[ui])")
    add_db_option(ui)
    ui.add_argument("--host", default=DEFAULT_HOST,
                    help=f"address to bind (default {DEFAULT_HOST}; any other has no authentication)")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    ui.set_defaults(handler=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigInvalid(f"--port {args.port}: expected 0-65535")
    from alphaforge.ui import require_extra

    require_extra()
    import uvicorn

    from alphaforge.ui.app import create_app
    from alphaforge.ui.database import open_read_only

    app = create_app(open_read_only(db_url(args)))
    if not is_loopback(args.host):
        err_console().print(f"[bold yellow]warning:[/] serving on {args.host}: the dashboard has no "
                            "authentication, anyone who can reach this port can read every run")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    _announce_when_bound(server)
    server.run()
    return 0


def _announce_when_bound(server: object) -> None:
    """Print the URL once uvicorn has bound its socket (so ``--port 0`` shows the real port)."""
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    startup = server.startup

    async def startup_then_print(sockets: object = None) -> None:
        await startup(sockets=sockets)  # type: ignore[arg-type]
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                print(f"AlphaForge dashboard (read-only) at {url_of(host, port)}  — Ctrl+C to stop", flush=True)
                return

    server.startup = startup_then_print  # type: ignore[method-assign]
