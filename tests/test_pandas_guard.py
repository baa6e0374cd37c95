"""No chained indexing, no implicit copies: the data model's rule, held by pandas and guarded in development.

Three layers: pyproject.toml admits only a pandas with Copy-on-Write (3.x, where it is the only mode), so a
frame derived from another never writes through to it; ruff's PD rules refuse the idioms that lead there;
and the suite's filterwarnings turn pandas' ChainedAssignmentError into a failure, so a chained assignment
in any test or fixture (or in code a test reaches) fails instead of silently doing nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

TEST_FILE = '''
import pandas as pd
import pytest


@pytest.fixture
def bars() -> pd.DataFrame:
    frame = pd.DataFrame({{"close": [1.0, 2.0, 3.0]}})
    {assignment}
    return frame


def test_uses_bars(bars: pd.DataFrame) -> None:
    assert len(bars) == 3
'''

CHAINED = {
    "setitem": 'frame["close"][0] = 9.0',
    "inplace_method": 'frame["close"].fillna(0.0, inplace=True)',
}
CLEAN = 'frame.loc[0, "close"] = 9.0'


def _pytest(tmp_path: Path, assignment: str, config: Path) -> subprocess.CompletedProcess[str]:
    """Run one small test file, with `assignment` in its fixture, under `config` in a fresh pytest."""
    test_file = tmp_path / "test_chained.py"
    test_file.write_text(TEST_FILE.format(assignment=assignment), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONWARNINGS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(config),
         "--rootdir", str(tmp_path), str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("kind", sorted(CHAINED))
def test_chained_assignment_in_a_fixture_fails_under_the_repo_config(kind: str, tmp_path: Path) -> None:
    run = _pytest(tmp_path, CHAINED[kind], PYPROJECT)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 error" in run.stdout and "pandas.errors.ChainedAssignmentError" in run.stdout, run.stdout[-3000:]


def test_the_same_fixture_without_chained_assignment_passes(tmp_path: Path) -> None:
    run = _pytest(tmp_path, CLEAN, PYPROJECT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout and "ChainedAssignmentError" not in run.stdout


def test_without_the_repo_config_a_chained_assignment_only_warns(tmp_path: Path) -> None:
    """The control: it is the repo's filterwarnings, not pandas alone, that makes the chained fixture fail."""
    neutral = tmp_path / "neutral.ini"
    neutral.write_text("[pytest]\n", encoding="utf-8")
    run = _pytest(tmp_path, CHAINED["setitem"], neutral)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout and "ChainedAssignmentError" in run.stdout


def test_the_lint_rules_refuse_inplace_and_values() -> None:
    """ruff under the repo's configuration flags the pandas idioms the PD family exists for."""
    probe = (
        "import pandas as pd\n\n"
        "frame = pd.DataFrame({'close': [1.0, None]})\n"
        "frame.fillna(0.0, inplace=True)\n"
        "raw = frame.values\n"
    )
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(PYPROJECT), "--no-cache",
         "--output-format", "concise", "--stdin-filename", "probe.py", "-"],
        input=probe, capture_output=True, text=True, timeout=60,
    )
    assert lint.returncode == 1 and "PD002" in lint.stdout and "PD011" in lint.stdout, lint.stdout + lint.stderr


def test_the_pandas_pin_admits_only_copy_on_write_releases() -> None:
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in deps if Requirement(d).name == "pandas"]
    assert not pin.specifier.contains("2.3.3") and pin.specifier.contains("3.0.0"), str(pin)
    assert int(pd.__version__.split(".")[0]) >= 3, pd.__version__


def test_a_column_taken_from_a_frame_never_writes_through_to_it() -> None:
    frame = pd.DataFrame({"close": [1.0, 2.0, 3.0]})
    column = frame["close"]
    column.iloc[0] = 9.0
    subset = frame[frame["close"] > 1.0]
    subset.loc[:, "close"] = 0.0
    assert frame["close"].tolist() == [1.0, 2.0, 3.0]
    assert column.iloc[0] == 9.0 and subset["close"].tolist() == [0.0, 0.0]
