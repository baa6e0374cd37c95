"""The dashboard as a Starlette app: pages (server-rendered, Jinja2 with autoescape) and the JSON API.

``create_app(store)`` takes a :class:`Store` opened by :func:`alphaforge.ui.database.open_read_only`. Errors
map to status codes with a message and never a traceback: a malformed parameter (:class:`QueryInvalid`) or
an ambiguous run prefix → 400; an unknown run, sweep, study or path → 404; the database unreachable → 503;
anything else → 500 with the error's type only. API paths (``/api/…``) answer JSON
``{"error": CODE, "message": …}``; pages answer an HTML error page.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from alphaforge.db.store import Store
from alphaforge.errors import AlphaForgeError, DatabaseUnavailable, RunAmbiguous, RunNotFound
from alphaforge.ui import api, pages
from alphaforge.ui.formatting import FILTERS
from alphaforge.ui.params import QueryInvalid
from alphaforge.ui.plotly_assets import bundled_styles, plotly_css, plotly_js
from alphaforge.ui.security import SecurityHeaders
from alphaforge.ui.studies import SweepNotFound

log = logging.getLogger("alphaforge.ui")
STATIC = Path(__file__).resolve().parent / "static"
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (QueryInvalid, 400), (RunAmbiguous, 400), (RunNotFound, 404), (SweepNotFound, 404),
    (DatabaseUnavailable, 503),
)


def templates() -> Jinja2Templates:
    env = Environment(loader=PackageLoader("alphaforge.ui", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(FILTERS)
    env.globals["plotly_bundled_ids"] = sorted(bundled_styles())
    return Jinja2Templates(env=env)


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": code, "message": message}, status_code=status)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "code": code, "message": message}, status_code=status)


async def _on_known(request: Request, exc: Exception) -> Response:
    status = next((s for cls, s in STATUS_OF if isinstance(exc, cls)), 500)
    assert isinstance(exc, AlphaForgeError)
    return _error(request, status, exc.error_code, exc.message)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "NOT_FOUND" if exc.status_code == 404 else f"HTTP_{exc.status_code}"
    message = f"no page at {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return _error(request, exc.status_code, code, message)


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return _error(request, 500, "INTERNAL", f"internal error ({type(exc).__name__}); see the server log")


def create_app(store: Store) -> Starlette:
    """The dashboard over ``store`` (which should be read-only: :func:`open_read_only`)."""
    plotly = plotly_js()

    async def plotly_file(request: Request) -> Response:
        return FileResponse(plotly, media_type="text/javascript",
                            headers={"cache-control": "public, max-age=86400"})

    async def plotly_stylesheet(request: Request) -> Response:
        return Response(plotly_css(), media_type="text/css", headers={"cache-control": "public, max-age=86400"})

    async def bundled_stylesheet(request: Request) -> Response:
        css = bundled_styles().get(request.path_params["style_id"])
        if css is None:
            raise HTTPException(404)
        return Response(css, media_type="text/css", headers={"cache-control": "public, max-age=86400"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", pages.runs_page, name="runs"),
        Route("/runs/{run_id}", pages.run_page, name="run"),
        Route("/compare", pages.compare_page, name="compare"),
        Route("/sweeps/{sweep_id}", pages.sweep_page, name="sweep"),
        Route("/studies/{study:path}", pages.study_page, name="study"),
        Route("/api/runs", api.runs, name="api_runs"),
        Route("/api/runs/{run_id}", api.run, name="api_run"),
        Route("/api/runs/{run_id}/equity", api.equity, name="api_equity"),
        Route("/api/runs/{run_id}/trades", api.trades, name="api_trades"),
        Route("/api/runs/{run_id}/export/{name}.parquet", api.export, name="api_export"),
        Route("/api/compare", api.compare, name="api_compare"),
        Route("/api/sweeps/{sweep_id}", api.sweep, name="api_sweep"),
        Route("/api/studies/{study:path}", api.study, name="api_study"),
        Route("/static/plotly.min.js", plotly_file, name="plotly"),
        Route("/static/plotly.css", plotly_stylesheet, name="plotly_css"),
        Route("/static/plotly-bundled/{style_id}.css", bundled_stylesheet, name="plotly_bundled_css"),
        Route("/favicon.ico", favicon, name="favicon"),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    handlers: dict[Any, Any] = {AlphaForgeError: _on_known, HTTPException: _on_http, Exception: _on_crash}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.store = store
    app.state.templates = templates()
    app.add_middleware(SecurityHeaders)
    return app
