"""The layer rule, checked on the package's import graph (every import statement, including those inside
functions and ``TYPE_CHECKING`` blocks).

Layers, lowest first: ``core`` (errors, hashing, enums, numeric, version) → ``compute`` (config, data, features,
backtest, metrics, validation: no database, no CLI) → ``db`` (models, engine, store, bulk paths, migrations)
→ ``runs`` (unit of work, liveness, provenance, pipeline, queries, verify, sweeps) → ``ui`` (the read-only
dashboard) → ``cli``. A module may
import its own layer and the layers below it; the graph has no cycles.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import alphaforge

PACKAGE = Path(alphaforge.__file__).resolve().parent
MIGRATIONS = PACKAGE.parent / "alembic"

LAYERS = ("core", "compute", "db", "runs", "ui", "cli")
#: module prefix -> layer (the longest matching prefix wins)
LAYER_OF = {
    "alphaforge": "core",
    "alphaforge._version": "core",
    "alphaforge.errors": "core",
    "alphaforge.hashing": "core",
    "alphaforge.enums": "core",
    "alphaforge.numeric": "core",
    "alphaforge.methodology": "core",
    "alphaforge.config": "compute",
    "alphaforge.config_raw": "compute",
    "alphaforge.data": "compute",
    "alphaforge.synthetic": "compute",
    "alphaforge.features": "compute",
    "alphaforge.backtest": "compute",
    "alphaforge.metrics": "compute",
    "alphaforge.validation": "compute",
    "alphaforge.selection": "compute",
    "alphaforge.db": "db",
    "alphaforge.migrations": "db",
    "alphaforge.runs": "runs",
    "alphaforge.ui": "ui",
    "alphaforge.cli": "cli",
}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (the migrations as ``alphaforge.migrations``); a compiled
    module (setup.py) by its ``.pyi`` stub."""
    out: dict[str, Path] = {}
    for root, prefix in ((PACKAGE, "alphaforge"), (MIGRATIONS, "alphaforge.migrations")):
        stubs = [p for p in root.rglob("*.pyi") if not p.with_suffix(".py").exists()]
        for path in sorted([*root.rglob("*.py"), *stubs]):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([prefix, *parts])] = path
    return out


def layer_of(module: str) -> str:
    """The layer of ``module``: its longest listed prefix (the package itself matches only exactly, so a new
    top-level module must be placed in a layer by hand)."""
    best = max((p for p in LAYER_OF if module == p or (p != "alphaforge" and module.startswith(p + "."))),
               key=len, default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYER_OF"
    return LAYER_OF[best]


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``module`` imports (``from a.b import c`` names ``a.b.c`` when that is a
    module, else ``a.b``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("alphaforge.migrations") or name == "alphaforge" or name.startswith("alphaforge."):
                while name not in known and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in known and name != module:
                    out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(
        f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})"
        for m, targets in graph.items() for t in targets if rank[layer_of(t)] > rank[layer_of(m)]
    )


def test_every_module_is_in_a_layer() -> None:
    for module in module_files():
        assert layer_of(module) in LAYERS


def test_a_new_top_level_module_must_be_placed() -> None:
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("alphaforge.newthing")


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_layer_imports_a_layer_above_it() -> None:
    assert upward_imports(import_graph()) == []


def test_the_graph_sees_real_imports() -> None:
    graph = import_graph()
    assert "alphaforge.db.models" in graph["alphaforge.runs.service"]
    assert "alphaforge.runs.pipeline" in graph["alphaforge.cli.commands.run"]
    assert "alphaforge.db.models" in graph["alphaforge.migrations.env"]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert sorted(cycles(graph)) == expected


def test_a_pure_stage_importing_the_database_is_reported() -> None:
    graph = {"alphaforge.metrics": {"alphaforge.db.store"}, "alphaforge.db.store": set(),
             "alphaforge.runs.pipeline": {"alphaforge.db.store", "alphaforge.metrics"}}
    assert upward_imports(graph) == ["alphaforge.metrics (compute) imports alphaforge.db.store (db)"]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize("reader", ["alphaforge.runs.queries", "alphaforge.runs.verify", "alphaforge.ui.app"])
def test_read_only_modules_never_reach_the_pipeline(reader: str) -> None:
    assert "alphaforge.runs.pipeline" not in reachable(import_graph(), reader)


def test_the_dashboard_never_opens_a_write_session() -> None:
    """``ui`` reads through ``read_session``/``read_connection`` only (its database is read-only at the driver
    too): no ``.session()``, ``.begin()`` or bulk insert anywhere in the package."""
    writes = re.compile(r"\.session\(\)|\.begin\(\)|\binsert_(?:trades|equity)\b|\bwrite_(?:metrics|validation)\b")
    found = [f"{path.name}: {m.group(0)}" for path in (PACKAGE / "ui").rglob("*.py")
             for m in writes.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
