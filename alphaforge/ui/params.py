"""Query parameters of the dashboard, parsed into typed values; anything malformed is :class:`QueryInvalid`
(HTTP 400 with its message), never a traceback.

The metric filter is a small expression language (``filters=``)::

    expr  := term ("or" term)*          -- "and" binds tighter than "or"
    term  := atom ("and" atom)*
    atom  := "(" expr ")" | NAME OP NUMBER
    OP    := "<" | "<=" | ">" | ">=" | "=" | "!="

``NAME`` is a metric key of the backtest phase (``sharpe``, ``max_drawdown``, …) or ``pvalue`` (the
permutation p-value), e.g. ``sharpe > 1 and max_drawdown < 0.3``. The parse is a tree of :class:`Cond` and
:class:`Combine` nodes; :mod:`alphaforge.ui.listing` turns it into SQL with bound parameters only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from alphaforge.enums import RunStatus, values
from alphaforge.errors import AlphaForgeError

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
MAX_FILTER_CHARS = 500
MAX_FILTER_TERMS = 20
NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
#: sort keys that are columns of the run itself (any other name is a metric key)
RUN_SORTS = ("updated_at", "created_at", "status", "run_hash", "pvalue")
DEFAULT_SORT = "updated_at"
_TOKEN = re.compile(r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<op><=|>=|!=|<|>|=)"
                    r"|(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")


class QueryInvalid(AlphaForgeError):
    """A query parameter of the dashboard is malformed (HTTP 400)."""

    error_code: ClassVar[str] = "QUERY_INVALID"
    exit_code: ClassVar[int] = 2


@dataclass(frozen=True)
class Cond:
    """``name op value``: one metric (or ``pvalue``) compared with a number."""

    name: str
    op: str
    value: float


@dataclass(frozen=True)
class Combine:
    """``op`` is ``"and"`` or ``"or"`` over two or more parts."""

    op: str
    parts: tuple[Cond | Combine, ...]


Filter = Cond | Combine


def names_in(node: Filter | None) -> set[str]:
    """Every metric name a filter mentions."""
    if node is None:
        return set()
    if isinstance(node, Cond):
        return {node.name}
    return set().union(*(names_in(p) for p in node.parts))


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryInvalid(f"filter: unexpected {text[pos:].strip()[:20]!r} at character {pos + 1}",
                               param="filters")
        out.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.terms = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise QueryInvalid("filter: incomplete expression (expected e.g. `sharpe > 1`)", param="filters")
        self.pos += 1
        return tok

    def expr(self) -> Filter:
        return self._chain("or", self.term)

    def term(self) -> Filter:
        return self._chain("and", self.atom)

    def _chain(self, word: str, part: object) -> Filter:
        parts = [part()]  # type: ignore[operator]
        while (self.peek() or "").lower() == word:
            self.take()
            parts.append(part())  # type: ignore[operator]
        return parts[0] if len(parts) == 1 else Combine(word, tuple(parts))

    def atom(self) -> Filter:
        tok = self.take()
        if tok == "(":
            inner = self.expr()
            if self.peek() != ")":
                raise QueryInvalid("filter: missing `)`", param="filters")
            self.take()
            return inner
        name = tok.lower()
        if not NAME.fullmatch(name) or name in ("and", "or"):
            raise QueryInvalid(f"filter: expected a metric name, got {tok!r}", param="filters")
        op = self.take()
        if op not in OPERATORS:
            raise QueryInvalid(f"filter: expected one of {' '.join(OPERATORS)} after {name!r}, got {op!r}",
                               param="filters")
        number = self.take()
        try:
            value = float(number)
        except ValueError:
            raise QueryInvalid(f"filter: expected a number after `{name} {op}`, got {number!r}",
                               param="filters") from None
        if not math.isfinite(value):
            raise QueryInvalid(f"filter: {number!r} is not a finite number", param="filters")
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise QueryInvalid(f"filter: more than {MAX_FILTER_TERMS} comparisons", param="filters")
        return Cond(name, op, value)


def parse_filter(text: str) -> Filter | None:
    """The filter expression (``None`` for an empty one); :class:`QueryInvalid` on a malformed one."""
    if not text.strip():
        return None
    if len(text) > MAX_FILTER_CHARS:
        raise QueryInvalid(f"filter: longer than {MAX_FILTER_CHARS} characters", param="filters")
    parser = _Parser(text)
    tree = parser.expr()
    if parser.peek() is not None:
        raise QueryInvalid(f"filter: unexpected {parser.peek()!r} (join comparisons with `and` / `or`)",
                           param="filters")
    return tree


def positive_int(params: Mapping[str, str], name: str, default: int, *, maximum: int | None = None) -> int:
    """An integer ``>= 1`` (and ``<= maximum``) from the query string."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise QueryInvalid(f"{name}={raw[:20]!r}: expected a positive whole number", param=name)
    value = int(raw)
    if maximum is not None and value > maximum:
        raise QueryInvalid(f"{name}={value}: at most {maximum}", param=name)
    return value


def choice(params: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    raw = params.get(name) or default
    if raw not in allowed:
        raise QueryInvalid(f"{name}={raw[:40]!r}: expected one of {', '.join(allowed)}", param=name)
    return raw


def text_param(params: Mapping[str, str], name: str, *, max_chars: int = 200) -> str | None:
    """An optional free-text parameter (stripped; empty → ``None``)."""
    raw = (params.get(name) or "").strip()
    if len(raw) > max_chars:
        raise QueryInvalid(f"{name}: longer than {max_chars} characters", param=name)
    return raw or None


def name_param(params: Mapping[str, str], name: str, default: str) -> str:
    """A metric or column name (lowercase identifier)."""
    raw = (params.get(name) or default).strip().lower()
    if not NAME.fullmatch(raw):
        raise QueryInvalid(f"{name}={raw[:40]!r}: expected a metric or column name", param=name)
    return raw


@dataclass(frozen=True)
class RunQuery:
    """One page of the runs listing: filters, sort and paging, as the runs page and ``/api/runs`` take them."""

    statuses: tuple[str, ...] = ()
    symbol: str | None = None
    strategy: str | None = None
    study: str | None = None
    filters: Filter | None = None
    filters_text: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = True
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def as_params(self, **override: object) -> dict[str, str]:
        """The query string that reproduces this query (with ``override``), for links: sort and page links."""
        out: dict[str, str] = {}
        if self.statuses:
            out["status"] = ",".join(self.statuses)
        for key in ("symbol", "strategy", "study"):
            if getattr(self, key):
                out[key] = str(getattr(self, key))
        if self.filters_text:
            out["filters"] = self.filters_text
        out["sort"] = self.sort
        out["dir"] = "desc" if self.descending else "asc"
        out["per_page"] = str(self.per_page)
        out["page"] = str(self.page)
        out.update({k: str(v) for k, v in override.items()})
        return out


def run_query(params: Mapping[str, str]) -> RunQuery:
    """Parse the runs listing's parameters (``status`` may list several, comma-separated)."""
    statuses = tuple(s for s in (params.get("status") or "").split(",") if s.strip())
    for s in statuses:
        if s not in values(RunStatus):
            raise QueryInvalid(f"status={s[:20]!r}: expected one of {', '.join(values(RunStatus))}",
                               param="status")
    filters_text = (params.get("filters") or "").strip()
    return RunQuery(
        statuses=statuses,
        symbol=text_param(params, "symbol"),
        strategy=text_param(params, "strategy"),
        study=text_param(params, "study"),
        filters=parse_filter(filters_text),
        filters_text=filters_text,
        sort=name_param(params, "sort", DEFAULT_SORT),
        descending=choice(params, "dir", ("asc", "desc"), "desc") == "desc",
        page=positive_int(params, "page", 1, maximum=10**7),
        per_page=positive_int(params, "per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE),
    )
