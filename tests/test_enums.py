"""alphaforge.enums is the single source of every enumerated value: the CHECK constraints, the config
validation, the lifecycle, the CLI choices and the compute stages all take their lists from it."""

from __future__ import annotations

import ast
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import CheckConstraint

import alphaforge
from alphaforge.cli.main import build_parser
from alphaforge.config import load_config
from alphaforge.db import models
from alphaforge.enums import (
    BootstrapMethod,
    CIWidthMode,
    HeadlineMetric,
    MetricValueType,
    RunStatus,
    TradeSide,
    WalkForwardMode,
    values,
)
from alphaforge.errors import ConfigInvalid
from alphaforge.runs.service import TRANSITIONS

PACKAGE = Path(alphaforge.__file__).resolve().parent
MINIMAL: dict[str, Any] = {"symbol": "X", "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}}


def _check(model: Any, name: str) -> str:
    (ck,) = [c for c in model.__table__.constraints
             if isinstance(c, CheckConstraint) and str(c.name).endswith(f"_{name}")]
    return str(ck.sqltext)


@pytest.mark.parametrize(("model", "check", "column", "enum"), [
    (models.Run, "status_enum", "status", RunStatus),
    (models.Trade, "side_enum", "side", TradeSide),
    (models.Validation, "bootstrap_method_enum", "bootstrap_method", BootstrapMethod),
    (models.Metric, "value_type_enum", "value_type", MetricValueType),
])
def test_enum_checks_list_exactly_the_enum_values(model: Any, check: str, column: str, enum: type[StrEnum]) -> None:
    text = _check(model, check)
    assert text == f"{column} IN ({', '.join(repr(v) for v in values(enum))})"
    # and nothing else quoted: a value added to the enum is a value the CHECK allows (with a migration)
    assert re.findall(r"'([^']*)'", text) == list(values(enum))


def test_the_coherence_check_names_the_bootstrap_methods_of_the_enum() -> None:
    quoted = set(re.findall(r"'([^']*)'", _check(models.Validation, "bootstrap_coherence")))
    assert quoted == set(values(BootstrapMethod))


def test_the_values_keep_the_order_migration_0001_created() -> None:
    # the CHECK text is compared byte for byte by `alembic check` (tests/test_migrations.py)
    assert values(RunStatus) == ("pending", "running", "failed", "completed")
    assert values(TradeSide) == ("buy", "sell", "flat")
    assert values(BootstrapMethod) == ("hadj_bb", "simple")
    assert values(MetricValueType) == ("int", "float", "str", "json")


@pytest.mark.parametrize(("dotted", "enum"), [
    ("validation.bootstrap.method", BootstrapMethod),
    ("validation.walk_forward.mode", WalkForwardMode),
    ("validation.ci_width.mode", CIWidthMode),
])
def test_config_refuses_a_value_outside_the_enum_naming_the_allowed_ones(dotted: str, enum: type[StrEnum]) -> None:
    raw: dict[str, Any] = {**MINIMAL, "validation": {"walk_forward": {"folds": 2}}}
    section, _, key = dotted.rpartition(".")
    node = raw
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = "nonesuch"
    with pytest.raises(ConfigInvalid) as info:
        load_config(raw)
    message = info.value.message
    assert message.startswith(f"{dotted}: must be one of ") and info.value.context["field"] == dotted
    assert message.count("'") // 2 - 1 == len(enum)  # every allowed value, and the refused one
    assert all(f"'{v}'" in message for v in values(enum))


def test_config_sections_hold_enum_members_and_the_canonical_dict_plain_strings() -> None:
    cfg = load_config({**MINIMAL, "validation": {"walk_forward": {"folds": 2, "mode": "optimize",
                                                                    "grid": {"fast": [3, 5]}},
                                                 "ci_width": {"cagr": 1.0, "mode": "strict"}}})
    v = cfg.validation
    assert v.bootstrap.method is BootstrapMethod.HADJ_BB and v.ci_width.mode is CIWidthMode.STRICT
    assert v.walk_forward is not None and v.walk_forward.mode is WalkForwardMode.OPTIMIZE
    d = cfg.to_dict()["validation"]
    assert type(d["bootstrap"]["method"]) is str and type(d["ci_width"]["mode"]) is str
    assert type(d["walk_forward"]["mode"]) is str
    assert set(d["ci_width"]) - {"mode"} <= set(values(HeadlineMetric))


def test_lifecycle_and_cli_take_the_run_statuses_from_the_enum() -> None:
    assert set(TRANSITIONS) == set(RunStatus)
    assert all(set(targets) <= set(RunStatus) for targets in TRANSITIONS.values())
    runs_list = build_parser()._subparsers._group_actions[0].choices["runs"]  # type: ignore[union-attr]
    ls = runs_list._subparsers._group_actions[0].choices["list"]
    (status,) = [a for a in ls._actions if a.dest == "status"]
    assert tuple(status.choices) == values(RunStatus)


#: values that must appear as a string literal nowhere in the package but alphaforge/enums.py. (Other run
#: statuses still appear in the liveness/ownership code that another change is rewriting; "simple" is also
#: the unrelated ``returns(kind="simple")`` of the indicators.)
SINGLE_SOURCE = (RunStatus.COMPLETED, *BootstrapMethod, *WalkForwardMode, *CIWidthMode, *TradeSide)
ELSEWHERE_MEANING = {("features/indicators.py", "simple")}


def test_no_module_but_enums_spells_an_enumerated_value() -> None:
    wanted = {str(v) for v in SINGLE_SOURCE}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "enums.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in wanted
                    and id(node) not in docstrings and (rel, node.value) not in ELSEWHERE_MEANING):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, "enumerated values spelled outside alphaforge/enums.py:\n" + "\n".join(found)
