"""The dashboard's pages and API in-process (Starlette's test client) on a database populated by the real
pipeline, on both backends: every route answers, the database is unchanged by a crawl of all of them, values
are escaped, malformed parameters are 400s with a message, unknown things are 404 pages."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from _ui_helpers import COMPLETED, N_BARS, STUDY, XSS, Populated, checksum, populate, settle
from conftest import PG_URL, create_pg_database, drop_pg_database
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from alphaforge.db.store import Store
from alphaforge.errors import DatabaseUnavailable, SchemaBehind
from alphaforge.ui.app import create_app
from alphaforge.ui.database import open_read_only
from alphaforge.ui.security import CSP


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def populated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    tmp = tmp_path_factory.mktemp("ui")
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("PostgreSQL tests need ALPHAFORGE_TEST_PG_URL (CI always sets it)")
        url = create_pg_database()
        yield populate(url, tmp / "cache")
        drop_pg_database(url)
        return
    url = f"sqlite:///{tmp / 'ui.db'}"
    out = populate(url, tmp / "cache")
    settle(url)
    yield out
    settle(url)


@pytest.fixture(scope="module")
def client(populated: Populated) -> Iterator[TestClient]:
    app = create_app(open_read_only(populated.url))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def get_ok(client: TestClient, path: str) -> Any:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r


def api(client: TestClient, path: str) -> Any:
    return get_ok(client, path).json()


def _bundled_css_path() -> str:
    from alphaforge.ui.plotly_assets import bundled_styles

    return f"/static/plotly-bundled/{min(bundled_styles(), default='none')}.css"


def crawl_paths(p: Populated) -> dict[str, str]:
    """One request per route (key: the route's path template)."""
    h = p.completed[0]
    study = STUDY.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E").replace("/", "%2F")
    return {
        "/": "/?sort=sharpe&dir=desc&filters=sharpe%20%3E%20-10%20or%20pvalue%20%3C%200.5&status=completed",
        "/runs/{run_id}": f"/runs/{h[:10]}?trades_page=2",
        "/compare": f"/compare?runs={p.completed[0]},{p.completed[1]}",
        "/sweeps/{sweep_id}": f"/sweeps/{p.sweep_id[:12]}?metric=cagr",
        "/studies/{study:path}": f"/studies/{study}",
        "/api/runs": "/api/runs?per_page=2&page=2&sort=created_at&dir=asc",
        "/api/runs/{run_id}": f"/api/runs/{p.running}",
        "/api/runs/{run_id}/equity": f"/api/runs/{h}/equity?buckets=50",
        "/api/runs/{run_id}/trades": f"/api/runs/{h}/trades?per_page=5&page=2",
        "/api/runs/{run_id}/export/{name}.parquet": f"/api/runs/{h}/export/trades.parquet",
        "/api/compare": f"/api/compare?runs={p.completed[2]}&runs={p.completed[3]}",
        "/api/sweeps/{sweep_id}": f"/api/sweeps/{p.sweep_id}?x=strategy.params.slow&y=strategy.params.fast",
        "/api/studies/{study:path}": f"/api/studies/{study}",
        "/static/plotly.min.js": "/static/plotly.min.js",
        "/static/plotly.css": "/static/plotly.css",
        "/static/plotly-bundled/{style_id}.css": _bundled_css_path(),
        "/favicon.ico": "/favicon.ico",
        "/static": "/static/app.js",
    }


def test_a_crawl_of_every_route_leaves_the_database_unchanged(populated: Populated) -> None:
    settle(populated.url)
    before = checksum(populated.url)
    app = create_app(open_read_only(populated.url))
    templates = {r.path for r in app.routes if isinstance(r, Route | Mount)}
    paths = crawl_paths(populated)
    assert set(paths) == templates  # every page and API route is crawled
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in [*paths.values(), "/static/app.css", f"/api/runs/{populated.completed[1]}/export/equity.parquet",
                     f"/runs/{populated.failed}", f"/runs/{populated.running}", "/nope", "/?filters=bad>>"]:
            assert c.get(path).status_code in (200, 204, 400, 404), path
    settle(open_read_only(populated.url).url)
    settle(populated.url)
    assert checksum(populated.url) == before


def test_every_response_carries_the_security_headers(client: TestClient, populated: Populated) -> None:
    for path in ["/", f"/runs/{populated.completed[0]}", "/api/runs", "/nope", "/static/app.js"]:
        r = client.get(path)
        assert r.headers["content-security-policy"] == CSP
        policy = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"  # no inline script or <style>
        assert policy["default-src"] == "'none'" and "unsafe-eval" not in CSP
        assert r.headers["x-content-type-options"] == "nosniff"


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    from alphaforge.ui.plotly_assets import plotly_js

    r = get_ok(client, "/static/plotly.min.js")
    assert r.content == plotly_js().read_bytes() and r.headers["content-type"].startswith("text/javascript")
    css = get_ok(client, "/static/plotly.css").text
    # the rules plotly.js would have injected inline, among them the one that stacks its SVG layers
    assert ".js-plotly-plot .plotly .main-svg{position:absolute;" in css
    assert len(css.splitlines()) > 30 and "X" not in css.split("{")[0]


def test_pages_have_no_inline_script(client: TestClient, populated: Populated) -> None:
    for path in ["/", f"/runs/{populated.completed[0]}", f"/compare?runs={populated.completed[0]},{populated.completed[1]}",
                 f"/sweeps/{populated.sweep_id}"]:
        html = get_ok(client, path).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/static/[a-z.]+\.js"', tag), (path, tag)
        assert re.search(r"\son[a-z]+=", html) is None, path  # no inline event handlers either


def test_values_are_escaped(client: TestClient, populated: Populated) -> None:
    xss_run = populated.completed[2]
    for path in ["/", f"/runs/{xss_run}", f"/compare?runs={xss_run},{populated.completed[0]}",
                 f"/sweeps/{populated.sweep_id}", f"/runs/{populated.failed}"]:
        html = get_ok(client, path).text
        assert "<script>alert" not in html and "<b>one</b>" not in html and "<i>not markup</i>" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in get_ok(client, "/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in get_ok(client, f"/runs/{xss_run}").text  # config and facts
    assert "boom &lt;i&gt;not markup&lt;/i&gt;" in get_ok(client, f"/runs/{populated.failed}").text
    # JSON keeps the value as data
    assert api(client, f"/api/runs/{xss_run}")["config"]["symbol"] == XSS


def test_runs_listing_sorts_filters_and_pages_in_the_database(client: TestClient, populated: Populated) -> None:
    store = Store(populated.url)
    sharpe = {h: store.read_metrics(h, phase="backtest")["sharpe"] for h in populated.completed}
    dd = {h: store.read_metrics(h, phase="backtest")["max_drawdown"] for h in populated.completed}
    every = api(client, "/api/runs")
    assert every["total"] == len(COMPLETED) + 2
    by_sharpe = api(client, "/api/runs?sort=sharpe&dir=desc")["runs"]
    assert [r["run_hash"] for r in by_sharpe[:4]] == sorted(sharpe, key=lambda h: -sharpe[h])
    assert [r["metrics"]["sharpe"] for r in by_sharpe[4:]] == [None, None]  # runs without metrics sort last
    asc = api(client, "/api/runs?sort=sharpe&dir=asc")["runs"]
    assert [r["run_hash"] for r in asc[:4]] == sorted(sharpe, key=lambda h: sharpe[h])
    cut = sorted(sharpe.values())[1]
    limit_dd = sorted(dd.values())[2]
    got = api(client, f"/api/runs?filters=sharpe>{cut} and max_drawdown<={limit_dd}")
    assert {r["run_hash"] for r in got["runs"]} == {h for h in sharpe if sharpe[h] > cut and dd[h] <= limit_dd}
    got = api(client, f"/api/runs?filters=(sharpe>{cut} and max_drawdown<={limit_dd}) or sharpe<={cut}")
    assert {r["run_hash"] for r in got["runs"]} == {h for h in sharpe if (sharpe[h] > cut and dd[h] <= limit_dd)
                                                    or sharpe[h] <= cut}
    assert {r["run_hash"] for r in api(client, "/api/runs?status=failed,running")["runs"]} == {
        populated.failed, populated.running}
    assert [r["run_hash"] for r in api(client, "/api/runs?symbol=BBB")["runs"]] == [populated.completed[1]]
    assert [r["run_hash"] for r in api(client, f"/api/runs?symbol={XSS}")["runs"]] == [populated.completed[2]]
    assert api(client, "/api/runs?strategy=sma_cross")["total"] == len(COMPLETED) + 2
    assert api(client, "/api/runs?strategy=nope")["total"] == 0
    study = api(client, f"/api/runs?study={STUDY}")
    assert {r["run_hash"] for r in study["runs"]} == set(populated.completed)
    pages = [api(client, f"/api/runs?per_page=2&page={i}&sort=created_at&dir=asc")["runs"] for i in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 2, 0]
    assert len({r["run_hash"] for p in pages for r in p}) == 6


def test_runs_page_columns(client: TestClient, populated: Populated) -> None:
    rows = {r["run_hash"]: r for r in api(client, "/api/runs")["runs"]}
    done = rows[populated.completed[0]]
    validation = Store(populated.url).read_validation(populated.completed[0])
    assert validation is not None
    assert done["pvalue"] == pytest.approx(validation["permutation_pvalue"], rel=1e-6)
    assert done["ci_verdict"] == json.loads(validation["payload_json"])["ci_width"]["verdict"]
    assert done["age_ms"] >= 0 and set(done["metrics"]) >= {"sharpe", "cagr", "max_drawdown"}
    live = rows[populated.running]
    assert live["phase"] == "validation" and live["heartbeat_age_ms"] is not None
    html = get_ok(client, "/").text
    assert "validation · beat" in html


def test_run_page_and_api(client: TestClient, populated: Populated) -> None:
    h = populated.completed[0]
    store = Store(populated.url)
    details = api(client, f"/api/runs/{h[:12]}")
    assert details["run_hash"] == h and details["metrics"] == store.read_metrics(h, phase="backtest")
    html = get_ok(client, f"/runs/{h}").text
    for part in ('id="equity-chart"', 'id="folds"', 'id="cis"', 'id="phases"', 'id="anomalies"', 'id="manifest"',
                 'id="trades"', f'/api/runs/{h}/export/trades.parquet', "null mean"):
        assert part in html, part
    equity = api(client, f"/api/runs/{h}/equity")
    frame = store.read_equity(h)
    assert equity["n_total"] == len(frame) == N_BARS and equity["n_points"] == N_BARS  # short: kept whole
    assert equity["equity"] == pytest.approx(frame["equity"].astype(float).tolist())
    trades = store.read_trades(h)
    page2 = api(client, f"/api/runs/{h}/trades?per_page=3&page=2")
    assert page2["total"] == len(trades)
    assert [t["pnl"] for t in page2["trades"]] == pytest.approx(trades["pnl"].astype(float).tolist()[3:6])
    running = api(client, f"/api/runs/{populated.running}")
    assert running["current_phase"] == "validation" and running["heartbeat_age_ms"] >= 0
    failed = get_ok(client, f"/runs/{populated.failed}").text
    assert "RuntimeError" in failed or "INTERNAL" in failed or 'id="errors"' in failed


def test_parquet_exports_match_runs_export(client: TestClient, populated: Populated, tmp_path: Path) -> None:
    from alphaforge.runs.queries import export_run

    h = populated.completed[1]
    export_run(Store(populated.url), h, tmp_path)
    for name in ("trades", "equity"):
        r = get_ok(client, f"/api/runs/{h}/export/{name}.parquet")
        assert "attachment" in r.headers["content-disposition"]
        ours = pq.read_table(io.BytesIO(r.content))
        theirs = pq.read_table(tmp_path / f"{name}.parquet")
        assert ours.schema.names == theirs.schema.names
        assert ours.to_pandas().equals(theirs.to_pandas()), name


def test_compare(client: TestClient, populated: Populated) -> None:
    a, b = populated.completed[0], populated.completed[1]
    data = api(client, f"/api/compare?runs={a[:10]},{b[:10]}")
    assert [r["run_hash"] for r in data["runs"]] == [a, b]
    differs = {row["key"] for row in data["config"] if row["differs"]}
    assert differs == {"symbol", "seed", "strategy.params.slow"}
    for curve in data["equity"]:
        assert curve["rebased"][0] == 1.0
    html = get_ok(client, f"/compare?runs={a},{b}").text
    assert html.count('class="differs"') == 3


def test_sweep_and_study_pages(client: TestClient, populated: Populated) -> None:
    store = Store(populated.url)
    sweep = api(client, f"/api/sweeps/{populated.sweep_id}?metric=sharpe")
    sharpe = {h: store.read_metrics(h, phase="backtest")["sharpe"] for h in populated.completed}
    assert [p["run_hash"] for p in sweep["leaderboard"]] == sorted(sharpe, key=lambda h: -sharpe[h])
    heat = sweep["heatmap"]
    assert (heat["x"], heat["y"], heat["x_values"], heat["y_values"]) == (
        "strategy.params.fast", "strategy.params.slow", [5, 10, 30], [20, 30])
    for (_sym, fast, slow, _seed), h in zip(COMPLETED, populated.completed, strict=True):
        assert heat["z"][[20, 30].index(slow)][[5, 10, 30].index(fast)] == pytest.approx(sharpe[h])
    assert sweep["family_report"]["report"]["pbo"] == 0.25
    html = get_ok(client, f"/sweeps/{populated.sweep_id}").text
    assert 'id="family-report"' in html and 'id="skipped"' in html and "slow &lt;= fast" in html
    study = api(client, f"/api/studies/{STUDY}")
    assert study["family_report"] is None and len(study["sweeps"]) == 1 and len(study["points"]) == 5
    assert 'id="no-family-report"' in get_ok(client, f"/studies/{STUDY}").text


@pytest.mark.parametrize(("path", "needle"), [
    ("/?page=0", "page"), ("/?per_page=100000", "per_page"), ("/?per_page=abc", "per_page"),
    ("/?dir=sideways", "dir"), ("/?status=done", "status"), ("/?sort=DROP%20TABLE", "sort"),
    ("/?filters=sharpe%20%3E", "incomplete"), ("/?filters=sharpe%20%3E%3E%201", "expected a number"),
    ("/?filters=sharpe%20%3E%201%20xor%20cagr%20%3C%200", "unexpected"),
    ("/?filters=nosuchmetric%20%3E%201", "unknown metric"), ("/?sort=nosuchmetric", "unknown metric"),
    ("/?filters=sharpe%20%3E%20nan", "finite"), ("/?filters=(sharpe%20%3E%201", "missing"),
    ("/?page=1&page=2", "given 2 times"), ("/compare?runs=abc", "2 to 4"),
    ("/api/runs?filters=;DROP", "unexpected"), ("/api/runs/x/equity?buckets=-1", "buckets"),
])
def test_malformed_parameters_are_400_with_a_message(client: TestClient, path: str, needle: str) -> None:
    r = client.get(path)
    assert r.status_code == 400, (path, r.text[:200])
    assert needle in r.text
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_unknown_things_are_404_pages(client: TestClient, populated: Populated) -> None:
    for path in ["/runs/" + "f" * 64, "/sweeps/" + "e" * 64, "/studies/nobody", "/no/such/page"]:
        r = client.get(path)
        assert r.status_code == 404 and 'id="error"' in r.text and "Traceback" not in r.text, path
    r = client.get("/api/runs/" + "f" * 64)
    assert r.status_code == 404 and r.json()["error"] == "RUN_NOT_FOUND"
    assert client.get(f"/api/runs/{populated.completed[0]}/export/secrets.parquet").status_code == 400


def test_new_runs_show_on_reload(populated: Populated, tmp_path: Path) -> None:
    """The dashboard holds no snapshot: a run written by another process appears on the next request."""
    app = create_app(open_read_only(populated.url))
    with TestClient(app) as c:
        before = c.get("/api/runs").json()["total"]
        from _ui_helpers import N_BARS as bars
        from test_pipeline import small_config

        from alphaforge.data import dataset_from_frame
        from alphaforge.data.synthetic import synthetic_ohlcv
        from alphaforge.runs.delete import delete_runs
        from alphaforge.runs.pipeline import Pipeline

        store = Store(populated.url)
        new = Pipeline(store, cache_dir=tmp_path / "c").run(
            small_config(symbol="NEW"), dataset_from_frame(synthetic_ohlcv(bars, seed=42))).run.run_hash
        try:
            assert c.get("/api/runs").json()["total"] == before + 1
            assert c.get("/api/runs?symbol=NEW").json()["runs"][0]["run_hash"] == new
        finally:
            delete_runs(store, [new])
            settle(populated.url)


def test_a_database_without_the_schema_is_refused_not_created(empty_db_url: str) -> None:
    """The dashboard never creates or migrates: a missing SQLite file stays missing, an empty PostgreSQL
    database stays empty (SchemaBehind names the upgrade command)."""
    if empty_db_url.startswith("sqlite"):
        with pytest.raises(DatabaseUnavailable, match="unable to open"):
            open_read_only(empty_db_url)
        assert not Path(empty_db_url.split("///", 1)[1]).exists()
        return
    with pytest.raises(SchemaBehind, match="never writes.*alphaforge db upgrade"):
        open_read_only(empty_db_url)
    settle(empty_db_url)
    engine = create_engine(empty_db_url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
    engine.dispose()


def test_default_listing_pages_match_the_full_order_with_ties(db_url: str) -> None:
    """The default order (``updated_at``, then ``run_hash``) pages through a bound read from the status index;
    with many runs sharing an ``updated_at`` every page is still exactly its slice of the full order."""
    from alphaforge.db.models import Run

    stamps = [5, 5, 5, 4, 4, 3, 3, 3, 2, 9, 9]
    statuses = ["completed", "failed", "completed", "running", "completed", "pending", "completed", "failed",
                "completed", "completed", "running"]
    with Store(db_url).session() as s:
        for i, (stamp, status) in enumerate(zip(stamps, statuses, strict=True)):
            s.add(Run(run_hash=f"{(i * 7919) % 97:02x}" + "a" * 62, created_at=1, updated_at=stamp, status=status,
                      config_json='{"symbol": "T", "strategy": {"name": "sma_cross"}}', manifest_json="{}",
                      data_hash="b" * 64, seed_root=i, db_version=3, bootstrap_seed=i))
    rows = {h: (u, st) for h, u, st in
            [(f"{(i * 7919) % 97:02x}" + "a" * 62, stamps[i], statuses[i]) for i in range(len(stamps))]}
    settle(db_url)
    with TestClient(create_app(open_read_only(db_url))) as c:
        for direction, status in (("desc", ""), ("asc", ""), ("desc", "completed,failed")):
            wanted = [h for h in rows if not status or rows[h][1] in status.split(",")]
            wanted.sort(key=lambda h: (rows[h][0] if direction == "asc" else -rows[h][0], h))
            got = []
            for page in range(1, 8):
                body = c.get(f"/api/runs?per_page=2&page={page}&dir={direction}&status={status}").json()
                assert body["total"] == len(wanted)
                got += [r["run_hash"] for r in body["runs"]]
            assert got == wanted, (direction, status)
