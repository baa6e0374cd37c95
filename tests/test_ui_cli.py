"""`alphaforge ui` as a user starts it: the URL it prints, the warning for a non-local host, the error naming
the extra when it is missing, and a one-line error (no new file) for a database that does not exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from _ui_helpers import settle
from test_cli import _entry_point, _env, assert_one_line_error

from alphaforge.db.store import Store


def _serve(db: str, *extra: str) -> tuple[str, str]:
    """Start the server, return (the URL line on stdout, the stderr read before it), then stop it."""
    proc = subprocess.Popen([*_entry_point(), "ui", "--db", db, "--port", "0", *extra], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return line, proc.stderr.read()


def test_it_binds_localhost_by_default_and_warns_for_another_host(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    Store(db)
    settle(db)
    line, err = _serve(db)
    assert re.search(r"http://127\.0\.0\.1:\d+/", line) and "read-only" in line
    assert "warning" not in err
    line, err = _serve(db, "--host", "0.0.0.0")
    assert re.search(r"http://0\.0\.0\.0:\d+/", line)
    assert "no authentication" in " ".join(err.split())


def test_a_missing_extra_is_named(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    code = ("import sys; sys.modules['plotly'] = None; from alphaforge.cli.main import main; "
            f"sys.exit(main(['ui', '--db', {db!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    line = assert_one_line_error(proc, 2, "CONFIG_INVALID")
    assert "alphaforge[ui]" in line and "plotly" in line
    assert not (tmp_path / "a.db").exists()


def test_a_missing_database_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    proc = subprocess.run([*_entry_point(), "ui", "--db", f"sqlite:///{missing}", "--port", "0"], env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert_one_line_error(proc, 4, "DB_UNAVAILABLE")
    assert not missing.exists()


def test_a_bad_port_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([*_entry_point(), "ui", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--port", "70000"],
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert_one_line_error(proc, 2, "CONFIG_INVALID")


def test_the_wheel_carries_every_template_and_static_file() -> None:
    """Every file under alphaforge/ui/templates and static/ matches the package-data patterns of pyproject."""
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parent.parent
    config = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "alphaforge.ui" in config["packages"]
    patterns = config["package-data"]["alphaforge.ui"]
    ui = repo / "alphaforge" / "ui"
    files = [p.relative_to(ui).as_posix() for d in ("templates", "static") for p in (ui / d).rglob("*") if p.is_file()]
    assert files and [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []
