"""The server-rendered pages: each reads what it shows through the same functions as the API."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from alphaforge.enums import RunStatus, values
from alphaforge.ui import details, studies
from alphaforge.ui.api import TRADES_PER_PAGE, compare_ids, params, store_of
from alphaforge.ui.compare import compare_runs
from alphaforge.ui.listing import HEADLINE, list_page
from alphaforge.ui.params import positive_int, run_query


def _render(request: Request, name: str, **context: object) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context)


def runs_page(request: Request) -> Response:
    query = run_query(params(request))
    page = list_page(store_of(request), query)
    last_page = max(1, -(-page.total // query.per_page))
    return _render(request, "runs.html", query=query, page=page, headline=HEADLINE,
                   statuses=values(RunStatus), last_page=last_page,
                   link=lambda **o: "/?" + urlencode(query.as_params(**o)))


def run_page(request: Request) -> Response:
    store = store_of(request)
    run_hash = details.resolve(store, request.path_params["run_id"])
    trades_at = positive_int(params(request), "trades_page", 1, maximum=10**7)
    run = details.run_details(store, run_hash)
    trades = details.trades_page(store, run_hash, trades_at, TRADES_PER_PAGE)
    return _render(request, "run.html", run=run, trades=trades,
                   trades_last=max(1, -(-trades["total"] // TRADES_PER_PAGE)))


def compare_page(request: Request) -> Response:
    ids = compare_ids(request)
    data = compare_runs(store_of(request), ids)
    return _render(request, "compare.html", data=data,
                   api_url="/api/compare?" + urlencode({"runs": ",".join(r["run_hash"] for r in data["runs"])}))


def sweep_page(request: Request) -> Response:
    view = studies.view_params(params(request))
    data = studies.sweep_view(store_of(request), request.path_params["sweep_id"], view)
    return _render(request, "sweep.html", data=data, view=view, kind="sweep",
                   api_url=f"/api/sweeps/{data['sweep_id']}?" + urlencode(view.as_params()))


def study_page(request: Request) -> Response:
    view = studies.view_params(params(request))
    data = studies.study_view(store_of(request), request.path_params["study"], view)
    return _render(request, "sweep.html", data=data, view=view, kind="study",
                   api_url=f"/api/studies/{quote(data['study'], safe='')}?" + urlencode(view.as_params()))
