"""The read-only results dashboard (``alphaforge ui``): server-rendered pages and a JSON API over a database.

Layer ``ui`` sits above ``runs`` and below ``cli``. Its web dependencies (Starlette, Jinja2, uvicorn, plotly)
are the optional extra ``alphaforge[ui]``; :func:`require_extra` turns their absence into one clear error.
Modules: ``database`` (open read-only), ``params`` (query parameters → typed values, 400 on malformed),
``sql`` / ``listing`` (the runs page in SQL), ``details`` / ``reduce`` (a run, its equity reduced),
``compare``, ``studies`` (sweeps and studies), ``app`` / ``pages`` / ``api`` (routes), ``security`` (headers).
"""

from __future__ import annotations

import importlib

from alphaforge.errors import ConfigInvalid

EXTRA_MODULES = ("starlette", "jinja2", "uvicorn", "plotly")


def require_extra() -> None:
    """Raise :class:`ConfigInvalid` naming the ``ui`` extra when one of its packages is not installed."""
    missing = []
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigInvalid(
            f"the dashboard needs {', '.join(missing)}: install the ui extra with `pip install 'alphaforge[ui]'`",
            missing=missing,
        )
