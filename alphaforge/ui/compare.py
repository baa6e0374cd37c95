"""Two to four runs side by side: equity rebased to 1 at each run's first bar, metrics, config differences.

Config differences are computed on the flattened config (dotted keys, e.g. ``strategy.params.fast``): a key
differs when its value is not the same in every run (a key missing from a run counts as a difference).
"""

from __future__ import annotations

from typing import Any

from alphaforge.db.store import Store
from alphaforge.runs.queries import show_run
from alphaforge.ui.details import reduced_equity, resolve
from alphaforge.ui.params import QueryInvalid
from alphaforge.ui.reduce import DEFAULT_BUCKETS

MIN_RUNS, MAX_RUNS = 2, 4
MISSING = "—"


def parse_run_ids(raw: str | None) -> list[str]:
    """``a,b,c`` → the ids, 2 to 4 of them, no repeats; :class:`QueryInvalid` otherwise."""
    ids = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise QueryInvalid(f"runs: give {MIN_RUNS} to {MAX_RUNS} comma-separated run ids, got {len(ids)}",
                           param="runs")
    return ids


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and scalars are leaves."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def compare_runs(store: Store, run_ids: list[str], buckets: int = DEFAULT_BUCKETS) -> dict[str, Any]:
    hashes = [resolve(store, r) for r in run_ids]
    if len(set(hashes)) != len(hashes):
        raise QueryInvalid("runs: the same run is listed twice", param="runs")
    details = [show_run(store, h) for h in hashes]
    metric_keys = sorted(set().union(*(d["metrics"] for d in details)))
    configs = [flatten(d["config"]) for d in details]
    config_keys = sorted(set().union(*configs))
    config_rows = [
        {"key": k, "values": [c.get(k, MISSING) for c in configs],
         "differs": len({repr(c.get(k, MISSING)) for c in configs}) > 1}
        for k in config_keys
    ]
    curves = []
    for h in hashes:
        eq = reduced_equity(store, h, buckets)
        first = eq["equity"][0] if eq["equity"] else 1.0
        curves.append({"run_hash": h, "ts_ms": eq["ts_ms"],
                       "rebased": [v / first if first else None for v in eq["equity"]]})
    return {
        "runs": [{"run_hash": d["run_hash"], "status": d["status"], "symbol": d["config"].get("symbol"),
                  "strategy": d["config"].get("strategy", {}).get("name")} for d in details],
        "metrics": [{"key": k, "values": [d["metrics"].get(k) for d in details]} for k in metric_keys],
        "validation": [{"pvalue": (d["validation"] or {}).get("permutation_pvalue"),
                        "verdict": ((d["validation"] or {}).get("payload") or {}).get("verdict")} for d in details],
        "config": config_rows,
        "equity": curves,
    }
