"""Run configuration: defaults before hashing, field-named refusals, overrides, seed_root, run_hash."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.config import (
    DEFAULT_CI_WIDTH_LIMITS,
    RunConfig,
    WalkForwardConfig,
    apply_overrides,
    load_config,
    load_raw_config,
    run_hash_of,
)
from alphaforge.errors import ConfigInvalid
from alphaforge.hashing import UINT32, canonical_json, hash_obj, seed_from_hex
from alphaforge.methodology import METHODOLOGY

SAMPLE_TOML = """
symbol = "NVDA"
seed = 42
[strategy]
name = "sma_cross"
params = { fast = 10, slow = 50 }
[execution]
initial_equity = 100000.0
fee_bps = 1.0
slippage_bps = 0.5
borrow_bps_annual = 25.0
allow_short = false
bars_per_year = 252
[validation.permutation]
n = 200
[validation.bootstrap]
n = 1000
method = "hadj_bb"
ci = 0.95
jitter = 1
[validation.walk_forward]
folds = 5
mode = "optimize"
grid = { fast = [5, 10, 20], slow = [50, 100] }
[validation.ci_width]
sharpe = 2.0
mode = "warn"
[features]
cache_dir = "/tmp/af-cache"
"""

MINIMAL: dict[str, Any] = {"symbol": "NVDA", "strategy": {"name": "buy_and_hold"}}
DEFAULTS_WRITTEN_OUT: dict[str, Any] = {
    "symbol": "NVDA",
    "strategy": {"name": "buy_and_hold", "params": {}},
    "execution": {"initial_equity": 100000, "fee_bps": 1, "slippage_bps": 0.5, "borrow_bps_annual": 25,
                  "allow_short": False},
    "validation": {"permutation": {"n": 200}, "bootstrap": {"n": 1000, "method": "hadj_bb", "ci": 0.95,
                                                            "jitter": 1},
                   "ci_width": {"sharpe": 2.0, "mode": "warn"}},
}


def with_(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``dotted`` set to ``value`` (tables created on the way)."""
    out = copy.deepcopy(base)
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


# --------------------------------------------------------------------------- loading and defaults
def test_sample_toml_loads(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(SAMPLE_TOML, encoding="utf-8")
    cfg = load_config(tmp_path / "run.toml")
    assert cfg.symbol == "NVDA" and cfg.seed == 42 and cfg.seed_root == 42
    assert cfg.strategy.name == "sma_cross" and cfg.strategy.params == {"fast": 10, "slow": 50}
    assert cfg.execution.bars_per_year == 252.0 and isinstance(cfg.execution.bars_per_year, float)
    wf = cfg.validation.walk_forward
    assert wf == WalkForwardConfig(folds=5, mode="optimize", grid={"fast": [5, 10, 20], "slow": [50, 100]})
    assert cfg.validation.ci_width.limits == {"sharpe": 2.0} and cfg.validation.ci_width.mode == "warn"
    assert cfg.features.cache_dir == "/tmp/af-cache"


def test_toml_json_and_dict_sources_agree(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(SAMPLE_TOML, encoding="utf-8")
    raw = load_raw_config(tmp_path / "run.toml")
    (tmp_path / "run.json").write_text(json.dumps(raw), encoding="utf-8")
    a, b, c = load_config(tmp_path / "run.toml"), load_config(str(tmp_path / "run.json")), load_config(raw)
    assert a == b == c and a.config_hash == b.config_hash == c.config_hash


def test_defaults_filled_before_hashing() -> None:
    minimal, explicit = load_config(MINIMAL), load_config(DEFAULTS_WRITTEN_OUT)
    assert minimal == explicit and minimal.config_hash == explicit.config_hash
    d = minimal.to_dict()
    assert d["execution"] == {"initial_equity": 100000.0, "fee_bps": 1.0, "slippage_bps": 0.5,
                              "borrow_bps_annual": 25.0, "allow_short": False, "bars_per_year": None}
    assert d["validation"] == {"permutation": {"n": 200},
                               "bootstrap": {"n": 1000, "method": "hadj_bb", "ci": 0.95, "jitter": 1},
                               "walk_forward": None, "ci_width": {**DEFAULT_CI_WIDTH_LIMITS, "mode": "warn"}}
    assert d["seed"] is None and "features" not in d
    assert canonical_json(d)  # JSON-serialisable, finite


def test_strategy_defaults_filled_before_hashing() -> None:
    from alphaforge.backtest.strategies import resolve_params

    filled = resolve_params("sma_cross", {})
    bare = load_config({"symbol": "X", "strategy": {"name": "sma_cross"}})
    written = load_config({"symbol": "X", "strategy": {"name": "sma_cross", "params": filled}})
    assert bare.strategy.params == filled and bare.config_hash == written.config_hash


@pytest.mark.parametrize("dotted,as_int,as_float", [
    ("execution.fee_bps", 1, 1.0), ("execution.initial_equity", 5000, 5000.0),
    ("execution.bars_per_year", 252, 252.0), ("validation.bootstrap.ci", 0.9, 0.9),
    ("validation.ci_width.sharpe", 3, 3.0),
])
def test_int_and_float_hash_the_same(dotted: str, as_int: Any, as_float: float) -> None:
    a, b = load_config(with_(MINIMAL, dotted, as_int)), load_config(with_(MINIMAL, dotted, as_float))
    assert a.config_hash == b.config_hash


def test_to_dict_round_trips_and_cache_dir_is_not_an_input(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(SAMPLE_TOML, encoding="utf-8")
    cfg = load_config(tmp_path / "run.toml")
    again = load_config(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict() and again.config_hash == cfg.config_hash
    assert again.features.cache_dir is None and cfg.features.cache_dir == "/tmp/af-cache"
    moved = load_config(with_(cfg.to_dict(), "features.cache_dir", "/elsewhere"))
    assert moved.features.cache_dir == "/elsewhere" and moved.config_hash == cfg.config_hash
    assert cfg.config_hash == hash_obj(cfg.to_dict())


def test_to_dict_is_a_copy() -> None:
    cfg = load_config(with_(MINIMAL, "strategy", {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}))
    before = cfg.config_hash
    cfg.to_dict()["strategy"]["params"]["fast"] = 99
    assert cfg.config_hash == before


# --------------------------------------------------------------------------- refusals naming the field
@pytest.mark.parametrize("dotted", [
    "colour", "execution.fee_bp", "validation.bootstrap.size", "validation.extra", "validation.permutation.k",
    "validation.walk_forward.step", "validation.ci_width.sortino", "strategy.kind", "features.dir",
])
def test_unknown_keys_name_the_field(dotted: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(with_(MINIMAL, dotted, 1))
    assert info.value.message.startswith(f"{dotted}: unknown key") and info.value.context["field"] == dotted
    assert info.value.error_code == "CONFIG_INVALID" and info.value.exit_code == 2


WRONG_TYPES = [
    ("execution.fee_bps", "abc", "expected a number, got 'abc'"),
    ("execution.initial_equity", True, "expected a number, got True"),
    ("execution.slippage_bps", [1], "expected a number"),
    ("execution.borrow_bps_annual", float("nan"), "expected a number"),
    ("execution.fee_bps", float("inf"), "expected a number"),
    ("execution.allow_short", 1, "expected true or false, got 1"),
    ("execution.allow_short", "true", "expected true or false"),
    ("execution.bars_per_year", "daily", "expected a number"),
    ("validation.permutation.n", True, "expected an integer, got True"),
    ("validation.permutation.n", 2.5, "expected an integer, got 2.5"),
    ("validation.bootstrap.n", "10", "expected an integer"),
    ("validation.bootstrap.jitter", 1.0, "expected an integer"),
    ("validation.bootstrap.method", 3, "expected a non-empty string"),
    ("validation.walk_forward.folds", "5", "expected an integer"),
    ("validation.walk_forward.grid", [5, 10], "expected a table"),
    ("validation.bootstrap", 3, "expected a table"),
    ("execution", "fast", "expected a table"),
    ("seed", "7", "expected an integer"),
    ("seed", True, "expected an integer"),
    ("symbol", 5, "expected a non-empty string"),
    ("symbol", "", "expected a non-empty string"),
    ("symbol", "   ", "expected a non-empty string"),
    ("strategy.params", 5, "expected a table of parameters"),
    ("features.cache_dir", 7, "expected a non-empty string"),
]


@pytest.mark.parametrize("dotted,value,fragment", WRONG_TYPES)
def test_wrong_types_name_the_field(dotted: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(with_(MINIMAL, dotted, value))
    assert info.value.message.startswith(f"{dotted}: ") and fragment in info.value.message
    assert info.value.context["field"] == dotted


BAD_VALUES = [
    ("execution.fee_bps", -1), ("execution.slippage_bps", -0.01), ("execution.borrow_bps_annual", -5),
    ("execution.initial_equity", 0), ("execution.initial_equity", -100.0), ("execution.bars_per_year", 0),
    ("validation.permutation.n", -1), ("validation.bootstrap.n", -10), ("validation.bootstrap.ci", 0),
    ("validation.bootstrap.ci", 1), ("validation.bootstrap.ci", 1.5), ("validation.bootstrap.jitter", -1),
    ("validation.bootstrap.method", "block"), ("validation.walk_forward.folds", 1),
    ("validation.walk_forward.mode", "rolling"), ("validation.ci_width.mode", "loud"),
    ("validation.ci_width.sharpe", 0), ("validation.ci_width.cagr", -1.0), ("seed", -1), ("seed", UINT32),
]


@pytest.mark.parametrize("dotted,value", BAD_VALUES)
def test_bad_values_name_the_field(dotted: str, value: Any) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(with_(MINIMAL, dotted, value))
    assert info.value.message.startswith(f"{dotted}: must ") and info.value.context["field"] == dotted


def test_accepted_edges() -> None:
    ok = [("validation.permutation.n", 0), ("validation.bootstrap.n", 0), ("validation.bootstrap.jitter", 0),
          ("validation.bootstrap.method", "simple"), ("validation.bootstrap.ci", 0.999),
          ("validation.walk_forward.folds", 2), ("validation.ci_width.mode", "strict"),
          ("execution.fee_bps", 0), ("execution.allow_short", True), ("seed", 0), ("seed", UINT32 - 1)]
    for dotted, value in ok:
        load_config(with_(MINIMAL, dotted, value))


def test_missing_required_parts() -> None:
    with pytest.raises(ConfigInvalid, match=r"^symbol: required"):
        load_config({"strategy": {"name": "buy_and_hold"}})
    with pytest.raises(ConfigInvalid, match=r"^strategy: required section"):
        load_config({"symbol": "X"})
    with pytest.raises(ConfigInvalid, match=r"^strategy.name: required"):
        load_config({"symbol": "X", "strategy": {"params": {}}})
    with pytest.raises(ConfigInvalid, match="expected a table"):
        load_config([("symbol", "X")])  # type: ignore[arg-type]


def test_strategy_registry_is_consulted() -> None:
    with pytest.raises(ConfigInvalid, match="strategy.name"):
        load_config(with_(MINIMAL, "strategy.name", "no_such_strategy"))
    sma = {"symbol": "X", "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}}
    assert load_config(sma).strategy.params == {"fast": 5, "slow": 20}
    for dotted, value in [("strategy.params.fast", "5"), ("strategy.params.fast", True),
                          ("strategy.params.bogus", 1), ("strategy.params.fast", 30)]:
        with pytest.raises(ConfigInvalid, match="strategy.params"):
            load_config(with_(sma, dotted, value))


# --------------------------------------------------------------------------- walk-forward and ci_width
def test_walk_forward_sections() -> None:
    sma = {"symbol": "X", "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}}
    assert load_config(sma).validation.walk_forward is None
    assert load_config(with_(sma, "validation.walk_forward", None)).validation.walk_forward is None
    assert load_config(with_(sma, "validation.walk_forward", {})).validation.walk_forward == WalkForwardConfig()
    opt = with_(sma, "validation.walk_forward", {"mode": "optimize", "grid": {"fast": [3, 5], "slow": [30]}})
    assert load_config(opt).validation.walk_forward == WalkForwardConfig(5, "optimize",
                                                                         {"fast": [3, 5], "slow": [30]})
    assert load_config(opt).config_hash != load_config(with_(sma, "validation.walk_forward", {})).config_hash


@pytest.mark.parametrize("section,fragment,field", [
    ({"mode": "optimize"}, "needs a non-empty grid", "validation.walk_forward.grid"),
    ({"mode": "fixed", "grid": {"fast": [3]}}, "only used with mode", "validation.walk_forward.grid"),
    ({"mode": "optimize", "grid": {"fast": []}}, "non-empty list", "validation.walk_forward.grid.fast"),
    ({"mode": "optimize", "grid": {"fast": 3}}, "non-empty list", "validation.walk_forward.grid.fast"),
    ({"mode": "optimize", "grid": {"fast": [[3]]}}, "scalars", "validation.walk_forward.grid.fast"),
    ({"mode": "optimize", "grid": {"window": [3, 4]}}, "not valid for strategy", "validation.walk_forward.grid"),
    ({"mode": "optimize", "grid": {"fast": [5, 40]}}, "not valid for strategy", "validation.walk_forward.grid"),
    ({"mode": "optimize", "grid": {"fast": ["5"]}}, "not valid for strategy", "validation.walk_forward.grid"),
    ({"mode": "optimize", "grid": {"fast": list(range(1, 20)), "slow": list(range(20, 1100))}},
     "grid points", "validation.walk_forward.grid"),
])
def test_walk_forward_refusals(section: dict[str, Any], fragment: str, field: str) -> None:
    sma = {"symbol": "X", "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}}}
    with pytest.raises(ConfigInvalid) as info:
        load_config(with_(sma, "validation.walk_forward", section))
    assert fragment in info.value.message and info.value.message.startswith(field)


def test_ci_width_limits() -> None:
    assert load_config(MINIMAL).validation.ci_width.limits == DEFAULT_CI_WIDTH_LIMITS
    both = load_config(with_(with_(MINIMAL, "validation.ci_width.cagr", 0.5), "validation.ci_width.sharpe", 1))
    assert both.validation.ci_width.limits == {"cagr": 0.5, "sharpe": 1.0}
    only_mode = load_config(with_(MINIMAL, "validation.ci_width.mode", "strict"))
    assert only_mode.validation.ci_width.limits == DEFAULT_CI_WIDTH_LIMITS
    assert both.config_hash != load_config(MINIMAL).config_hash


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("name,body,fragment", [
    ("run.toml", "symbol = ", "cannot be read"),
    ("run.json", "{ not json", "cannot be read"),
    ("run.json", "[1, 2]", "top level"),
    ("run.yaml", "symbol: X", "unsupported type"),
])
def test_bad_config_files(tmp_path: Path, name: str, body: str, fragment: str) -> None:
    (tmp_path / name).write_text(body, encoding="utf-8")
    with pytest.raises(ConfigInvalid, match=fragment):
        load_config(tmp_path / name)
    with pytest.raises(ConfigInvalid, match="not found"):
        load_config(tmp_path / "absent.toml")


# --------------------------------------------------------------------------- overrides
def test_apply_overrides_parses_literals_and_returns_a_new_dict() -> None:
    raw: dict[str, Any] = {"symbol": "NVDA", "strategy": {"name": "sma_cross", "params": {"fast": 10}}}
    frozen = copy.deepcopy(raw)
    out = apply_overrides(raw, [
        "strategy.params.fast=5", "validation.permutation.n=0", "execution.allow_short=true",
        "execution.fee_bps=2.5", "symbol=AAPL", "strategy.params.slow = 60 ", "x.list=[1, 2]",
        "x.quoted=\"007\"", "x.null=null", "x.date=2020-01-01", "x.eq=a=b", "x.empty=",
    ])
    assert raw == frozen and out is not raw
    assert out["strategy"]["params"] == {"fast": 5, "slow": 60}
    assert out["validation"] == {"permutation": {"n": 0}}
    assert out["execution"] == {"allow_short": True, "fee_bps": 2.5} and out["symbol"] == "AAPL"
    assert out["x"] == {"list": [1, 2], "quoted": "007", "null": None, "date": "2020-01-01", "eq": "a=b",
                        "empty": ""}
    del out["x"]
    cfg = load_config(out)
    assert cfg.validation.permutation.n == 0 and cfg.execution.allow_short is True


def test_apply_overrides_refusals() -> None:
    for bad in ["fast", "=5", "strategy..fast=1", "symbol.x=1"]:
        with pytest.raises(ConfigInvalid, match="override"):
            apply_overrides({"symbol": "NVDA"}, [bad])


def test_override_into_a_disabled_section_enables_it() -> None:
    out = apply_overrides({**MINIMAL, "validation": {"walk_forward": None}}, ["validation.walk_forward.folds=3"])
    assert load_config(out).validation.walk_forward == WalkForwardConfig(folds=3)


# --------------------------------------------------------------------------- seed_root and run_hash
@given(seed=st.integers(0, UINT32 - 1))
@settings(max_examples=50, deadline=None)
def test_explicit_seed_is_the_seed_root(seed: int) -> None:
    cfg = load_config({**MINIMAL, "seed": seed})
    assert cfg.seed_root == seed


@given(symbol=st.text(min_size=1, max_size=12).filter(str.strip), fee=st.integers(0, 50))
@settings(max_examples=50, deadline=None)
def test_derived_seed_root_in_range_and_deterministic(symbol: str, fee: int) -> None:
    cfg = load_config({**MINIMAL, "symbol": symbol, "execution": {"fee_bps": fee}})
    again = load_config({**MINIMAL, "symbol": symbol, "execution": {"fee_bps": float(fee)}})
    assert 0 <= cfg.seed_root < UINT32 and cfg.seed_root == again.seed_root
    assert cfg.seed_root == seed_from_hex(cfg.config_hash)


def test_run_hash_covers_every_methodology_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bumping any one computation's version (in the one registry) gives a new run identity."""
    cfg, d1 = load_config(MINIMAL), "a" * 64
    before = run_hash_of(cfg, d1)
    seen = {before}
    for component in list(METHODOLOGY):
        with monkeypatch.context() as m:
            m.setitem(METHODOLOGY, component, "99.0.0")
            seen.add(run_hash_of(cfg, d1))
    assert len(seen) == len(METHODOLOGY) + 1
    assert run_hash_of(cfg, d1) == before  # restored


def test_run_hash_sensitivity() -> None:
    cfg = load_config(MINIMAL)
    d1, d2 = "a" * 64, "b" * 64
    assert run_hash_of(cfg, d1) == hash_obj({"config": cfg.to_dict(), "data_hash": d1,
                                             "methodology": dict(METHODOLOGY)})
    assert run_hash_of(cfg, d1) == run_hash_of(load_config(DEFAULTS_WRITTEN_OUT), d1)
    assert run_hash_of(cfg, d1) != run_hash_of(cfg, d2)
    assert run_hash_of(cfg, d1) != run_hash_of(load_config(with_(MINIMAL, "execution.fee_bps", 1.5)), d1)
    assert run_hash_of(cfg, d1) != run_hash_of(load_config({**MINIMAL, "seed": cfg.seed_root}), d1)
    assert run_hash_of(cfg, d1) == run_hash_of(load_config(with_(MINIMAL, "features.cache_dir", "/c")), d1)


@given(fee=st.floats(0, 1e4), slip=st.floats(0, 1e4), equity=st.floats(1e-3, 1e12), short=st.booleans())
@settings(max_examples=50, deadline=None)
def test_any_valid_execution_round_trips(fee: float, slip: float, equity: float, short: bool) -> None:
    raw = {**MINIMAL, "execution": {"fee_bps": fee, "slippage_bps": slip, "initial_equity": equity,
                                    "allow_short": short}}
    cfg = load_config(raw)
    assert isinstance(cfg, RunConfig) and load_config(cfg.to_dict()) == cfg
    assert load_config(json.loads(canonical_json(cfg.to_dict()))).config_hash == cfg.config_hash


# --------------------------------------------------------------------------- extra research indicators
def test_extra_indicators_are_validated_resolved_and_part_of_the_identity() -> None:
    base = {"symbol": "X", "strategy": {"name": "buy_and_hold"}}
    plain = load_config(base)
    assert "features" not in plain.to_dict()  # absent: the canonical shape (and hash) is unchanged
    extra = load_config({**base, "features": {"indicators": [{"name": "rsi"}, {"name": "sma", "params": {"window": 5}}]}})
    assert extra.features.indicators == ({"name": "rsi", "params": {"window": 14}},
                                         {"name": "sma", "params": {"window": 5}})
    assert extra.config_hash != plain.config_hash
    assert load_config(extra.to_dict()) == extra


@pytest.mark.parametrize(("indicators", "field"), [
    ("rsi", "features.indicators"),
    ([{"name": "nope"}], "features.indicators[0]"),
    ([{"name": "sma", "params": {"window": 0}}], "features.indicators[0]"),
    ([{"name": "sma", "extra": 1}], "features.indicators[0]"),
    ([{"name": 3}], "features.indicators[0].name"),
])
def test_bad_extra_indicators_name_the_field(indicators: object, field: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config({"symbol": "X", "strategy": {"name": "buy_and_hold"}, "features": {"indicators": indicators}})
    assert str(info.value).startswith(field)
