"""The built wheel carries the migrations (`alphaforge db upgrade` works after a non-editable install) and the
compiled kernels of setup.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_install_in_fresh_venv_runs_db_upgrade(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    wheel = next(dist.glob("alphaforge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("alphaforge/backtest/_ledger", "alphaforge/validation/_permute", "alphaforge/features/_rolling"):
        assert any(n.startswith(module + ".") and n.endswith(".so") for n in names), (module, names)
        assert module + ".pyi" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    workdir = tmp_path / "elsewhere"  # not the checkout: the scripts must come from the installed package
    workdir.mkdir()
    db = workdir / "af.db"
    env = {k: v for k, v in os.environ.items() if k != "ALPHAFORGE_DB_URL"}
    up = subprocess.run(
        [str(venv / "bin" / "alphaforge"), "db", "upgrade", "--db", f"sqlite:///{db}"],
        cwd=workdir, capture_output=True, text=True, env=env,
    )
    assert up.returncode == 0, up.stderr
    where = subprocess.run(
        [str(py), "-c", "from alphaforge.db.migrate import script_location; print(script_location())"],
        cwd=workdir, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert "site-packages" in where and where.endswith("migrations")
    kernels = subprocess.run(
        [str(py), "-c", "from alphaforge.backtest import engine; from alphaforge.validation import permutation; "
                        "print(engine._ledger is not None and permutation._permute is not None)"],
        cwd=workdir, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert kernels == "True"  # the wheel's compiled kernels load
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "trades", "equity", "validation", "metrics", "features_cache", "run_errors",
            "phase_metrics"} <= tables
