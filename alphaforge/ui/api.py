"""The JSON API behind the pages (documented in the README, "The dashboard"). Every route only reads."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alphaforge.db.store import Store
from alphaforge.ui import details, studies
from alphaforge.ui.compare import compare_runs, parse_run_ids
from alphaforge.ui.listing import list_page
from alphaforge.ui.params import MAX_PER_PAGE, QueryInvalid, positive_int, run_query
from alphaforge.ui.reduce import DEFAULT_BUCKETS

MAX_BUCKETS = 5000
TRADES_PER_PAGE = 50


def store_of(request: Request) -> Store:
    return request.app.state.store


def params(request: Request) -> dict[str, str]:
    """The query string as a dict; a parameter given twice is malformed (except ``runs``, joined by commas)."""
    out: dict[str, str] = {}
    for key in request.query_params:
        got = request.query_params.getlist(key)
        if len(got) > 1 and key != "runs":
            raise QueryInvalid(f"{key}: given {len(got)} times, expected once", param=key)
        out[key] = ",".join(got)
    return out


def compare_ids(request: Request) -> list[str]:
    return parse_run_ids(params(request).get("runs"))


def runs(request: Request) -> Response:
    query = run_query(params(request))
    return JSONResponse(list_page(store_of(request), query).to_json(query))


def run(request: Request) -> Response:
    store = store_of(request)
    run_hash = details.resolve(store, request.path_params["run_id"])
    return JSONResponse(_jsonable(details.run_details(store, run_hash)))


def equity(request: Request) -> Response:
    store = store_of(request)
    buckets = positive_int(params(request), "buckets", DEFAULT_BUCKETS, maximum=MAX_BUCKETS)
    run_hash = details.resolve(store, request.path_params["run_id"])
    return JSONResponse(details.reduced_equity(store, run_hash, buckets))


def trades(request: Request) -> Response:
    store = store_of(request)
    p = params(request)
    page = positive_int(p, "page", 1, maximum=10**7)
    per_page = positive_int(p, "per_page", TRADES_PER_PAGE, maximum=MAX_PER_PAGE)
    run_hash = details.resolve(store, request.path_params["run_id"])
    return JSONResponse(details.trades_page(store, run_hash, page, per_page))


def export(request: Request) -> Response:
    store = store_of(request)
    name = request.path_params["name"]
    if name not in details.EXPORTS:
        raise QueryInvalid(f"export {name[:20]!r}: expected one of {', '.join(details.EXPORTS)}", param="name")
    run_hash = details.resolve(store, request.path_params["run_id"])
    body = details.export_parquet(store, run_hash, name)
    return Response(body, media_type="application/vnd.apache.parquet", headers={
        "content-disposition": f'attachment; filename="{run_hash[:12]}-{name}.parquet"'})


def compare(request: Request) -> Response:
    return JSONResponse(compare_runs(store_of(request), compare_ids(request)))


def sweep(request: Request) -> Response:
    view = studies.view_params(params(request))
    return JSONResponse(studies.sweep_view(store_of(request), request.path_params["sweep_id"], view))


def study(request: Request) -> Response:
    view = studies.view_params(params(request))
    return JSONResponse(studies.study_view(store_of(request), request.path_params["study"], view))


def _jsonable(obj: Any) -> Any:
    """Dict keys as strings (metrics grouped by a ``None`` phase)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj
