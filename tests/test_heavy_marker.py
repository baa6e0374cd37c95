"""The ``heavy`` marker means something: every heavy test takes its size from ``_heavy.heavy_size``, every test
module that sizes with it marks those tests heavy, and ALPHAFORGE_HEAVY_SCALE (what CI sets) changes the size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from _heavy import SCALE_VARIABLE, heavy_scale, heavy_size

TESTS = Path(__file__).parent


def _is_heavy_mark(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "heavy" and ast.unparse(node) == "pytest.mark.heavy"


def _modules() -> dict[str, tuple[list[str], bool]]:
    """Per test module: its tests marked heavy, and whether it calls heavy_size."""
    out = {}
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        heavy = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                 and any(_is_heavy_mark(d) for d in f.decorator_list)]
        sizes = any(isinstance(n, ast.Call) and ast.unparse(n.func) == "heavy_size" for n in ast.walk(tree))
        out[path.name] = (heavy, sizes)
    return out


def test_heavy_tests_and_heavy_sizes_go_together() -> None:
    modules = _modules()
    assert any(heavy for heavy, _ in modules.values()), "no test is marked heavy any more: drop the marker"
    for name, (heavy, sizes) in modules.items():
        if name == Path(__file__).name:
            continue
        assert bool(heavy) == sizes, f"{name}: heavy tests {heavy}, sizes with heavy_size: {sizes}"


def test_the_scale_reduces_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    assert heavy_scale() == 1.0 and heavy_size(1_000_000, minimum=20) == 1_000_000
    monkeypatch.setenv(SCALE_VARIABLE, "0.3")  # what .ci/run sets
    assert heavy_size(1_000_000, minimum=20) == 300_000
    assert heavy_size(10, minimum=20) == 20


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "ten", "nan"])
def test_a_bad_scale_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(SCALE_VARIABLE, raw)
    with pytest.raises(ValueError, match=SCALE_VARIABLE):
        heavy_size(100)


def test_ci_sets_the_scale() -> None:
    script = (TESTS.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert f'export {SCALE_VARIABLE}="${{{SCALE_VARIABLE}:-0.3}}"' in script
