"""plotly.js and its stylesheet, both taken from the installed ``plotly`` package (no CDN, no network).

plotly.js normally injects its base CSS as an inline ``<style>`` element, which the dashboard's
Content-Security-Policy (``style-src 'self'``) refuses. plotly.js skips that injection when the page already
has an element ``#plotly.js-style-global`` with the class ``no-inline-styles``; the pages link the stylesheet
under that id, and :func:`plotly_css` builds it from the same rules plotly.js would inject (the rule table
inside ``plotly.min.js``: selectors with ``X`` for ``.js-plotly-plot .plotly`` and ``Y`` for
``.plotly-notifier``). The per-plot mode-bar rules are never needed: the charts hide the mode bar (zoom by
dragging, reset by double-click, hover as usual).

Bundled libraries inject CSS of their own at load time the same way (maplibre's, guarded by an element id):
:func:`bundled_styles` finds those ids and their CSS, and the pages link that CSS under the same ids, so the
guard sees it present and nothing inline is attempted.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from pathlib import Path

_START = re.compile(r"""\{\s*["']X,X div["']\s*:""")
_END = "};for("
_STRING = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_PAIR = re.compile(rf"({_STRING})\s*:\s*({_STRING})")
_BUNDLED = re.compile(rf"""getElementById\("([0-9a-f]{{64}})"\)\)\{{var (\w+)=document\.createElement\("style"\);"""
                      rf"""\2\.id="\1",\2\.textContent=({_STRING})""")


def plotly_js() -> Path:
    """``plotly.min.js`` as shipped inside the installed ``plotly`` package."""
    return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))


def _unquote(literal: str) -> str:
    if literal.startswith('"'):
        return str(json.loads(literal))
    return str(json.loads('"' + literal[1:-1].replace('\\\'', "'").replace('"', '\\"') + '"'))


@functools.cache
def _source() -> str:
    return plotly_js().read_text(encoding="utf-8")


@functools.cache
def bundled_styles() -> dict[str, str]:
    """Element id → CSS of each stylesheet plotly.min.js would inject inline at load time."""
    return {m.group(1): _unquote(m.group(3)) for m in _BUNDLED.finditer(_source())}


@functools.cache
def plotly_css() -> str:
    """The base stylesheet plotly.js would inject, as a CSS file (empty if the rule table is not found)."""
    source = _source()
    start = _START.search(source)
    if start is None:
        return ""
    end = source.find(_END, start.start())
    rules = []
    for key, value in _PAIR.findall(source[start.start():end]):
        selector = _unquote(key)
        selector = re.sub(r"^,", " ,", selector).replace("X", ".js-plotly-plot .plotly").replace(
            "Y", ".plotly-notifier")
        rules.append(f"{selector}{{{_unquote(value)}}}")
    return "\n".join(rules) + "\n"
