"""The README's examples work: its Python blocks run, and its TOML block is a valid config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from alphaforge.config import load_config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_one_line_commands() -> None:
    bash = _blocks("bash")
    assert bash[0].strip() == "pip install . && alphaforge demo"
    assert bash[1].strip() == 'pip install -e ".[dev]" && pytest'


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[index], f"README.md python block {index}", "exec"), {})  # noqa: S102


def test_config_reference_is_a_valid_config(tmp_path: Path) -> None:
    (toml,) = _blocks("toml")
    config = load_config(tomllib.loads(toml))
    assert config.strategy.params == {"fast": 10, "slow": 50} and config.features.indicators
