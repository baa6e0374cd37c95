// AlphaForge dashboard charts. Loaded as a static file (the Content-Security-Policy allows no inline script):
// every chart is a <div data-chart="KIND" data-src="API URL">; this file fetches the JSON and draws it with
// plotly.js (served by the app from the installed plotly package). When a chart is drawn its element gets
// data-rendered-points (the number of points drawn), which the browser tests read.
"use strict";

// No mode bar: plotly.js styles it with per-plot inline <style> rules the CSP refuses. Zoom by dragging,
// reset by double-click, hover as usual.
const PLOT_CONFIG = { responsive: true, displaylogo: false, displayModeBar: false };
const LAYOUT = { margin: { l: 60, r: 20, t: 10, b: 40 }, hovermode: "x unified", showlegend: true,
                 legend: { orientation: "h" } };

async function fetchJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) { throw new Error(body.message || response.statusText); }
  return body;
}

function dates(msList) { return msList.map((ms) => new Date(ms)); }

function equityChart(el, data) {
  const x = dates(data.ts_ms);
  const traces = [
    { x, y: data.equity, name: "equity", type: "scatter", mode: "lines", yaxis: "y" },
    { x, y: data.drawdown.map((d) => -d), name: "drawdown", type: "scatter", mode: "lines", fill: "tozeroy",
      yaxis: "y2", line: { color: "#c0392b" } },
  ];
  const layout = Object.assign({}, LAYOUT, {
    yaxis: { title: { text: "equity" }, domain: [0.35, 1] },
    yaxis2: { title: { text: "drawdown" }, domain: [0, 0.28], tickformat: ".0%", anchor: "x" },
    xaxis: { type: "date", anchor: "y2" },
  });
  return Plotly.newPlot(el, traces, layout, PLOT_CONFIG).then(() => data.n_points);
}

function compareChart(el, data) {
  const traces = data.equity.map((curve) => ({
    x: dates(curve.ts_ms), y: curve.rebased, name: curve.run_hash.slice(0, 12), type: "scatter", mode: "lines",
  }));
  const layout = Object.assign({}, LAYOUT, { xaxis: { type: "date" }, yaxis: { title: { text: "rebased equity" } } });
  return Plotly.newPlot(el, traces, layout, PLOT_CONFIG)
    .then(() => data.equity.reduce((n, curve) => n + curve.ts_ms.length, 0));
}

function heatmapChart(el, data) {
  const h = data.heatmap;
  const label = (v) => JSON.stringify(v);
  const trace = { type: "heatmap", x: h.x_values.map(label), y: h.y_values.map(label), z: h.z,
                  colorscale: "Viridis", colorbar: { title: { text: h.metric } },
                  hovertemplate: h.x + "=%{x}<br>" + h.y + "=%{y}<br>" + h.metric + "=%{z}<extra></extra>" };
  const layout = Object.assign({}, LAYOUT, { hovermode: "closest", xaxis: { title: { text: h.x }, type: "category" },
                                             yaxis: { title: { text: h.y }, type: "category" } });
  return Plotly.newPlot(el, [trace], layout, PLOT_CONFIG).then(() => h.z.flat().filter((v) => v !== null).length);
}

const DRAW = { equity: equityChart, compare: compareChart, heatmap: heatmapChart };

function drawAll() {
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const draw = DRAW[el.dataset.chart];
    if (!draw) { return; }
    fetchJson(el.dataset.src)
      .then((data) => draw(el, data))
      .then((points) => { el.dataset.renderedPoints = String(points); })
      .catch((err) => {
        el.dataset.error = String(err.message || err);
        el.textContent = "chart failed: " + el.dataset.error;
      });
  });
}

document.addEventListener("DOMContentLoaded", drawAll);
