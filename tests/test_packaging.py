"""A plain install (a wheel, `pip install .`, a container image) must work like the source
checkout: the migrations and the widget's sources live at the top level of the repository
and must travel inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sqlite3, subprocess, sys
from pathlib import Path
import acquisition
from acquisition.config import Settings
from acquisition.db import ALEMBIC_DIR, connect, migrate
from acquisition.web import widget

site = Path(sys.argv[1])
for path in (Path(acquisition.__file__), ALEMBIC_DIR, widget.SOURCE):
    assert path.is_relative_to(site), path
settings = Settings(database_url=f"sqlite:///{sys.argv[2]}", secret_key="packaging-test-0123")
db = connect(settings)
migrate(db.engine)
db.dispose()
tables = {row[0] for row in sqlite3.connect(sys.argv[2]).execute("SELECT name FROM sqlite_master")}
assert {"links", "clicks", "widgets", "alembic_version"} <= tables, tables
assert "__ACQUISITION_CONFIG__" not in widget.template().head
from acquisition import spool_sync
assert Path(spool_sync.__file__).is_relative_to(site)
helper = subprocess.run([sys.executable, "-I", spool_sync.__file__], input=b"",
                        capture_output=True, timeout=30)
assert helper.returncode == 0, helper.stderr
print("installed package works")
"""


def test_a_built_wheel_carries_migrations_widget_and_every_module(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("acquisition", "alembic", "widgets"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("acquisition-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "acquisition").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert modules <= shipped, f"left out of the wheel: {sorted(modules - shipped)}"
    migrations = {
        f"acquisition/_alembic/versions/{path.name}"
        for path in (ROOT / "alembic" / "versions").glob("*.py")
    }
    widget = {"acquisition/_widgets/widget.js", "acquisition/_widgets/widget.css"}
    assert migrations | widget | {"acquisition/_alembic/env.py"} <= shipped

    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site), str(tmp_path / "installed.db")],
        cwd=tmp_path,  # not the checkout: nothing may come from the source tree
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "installed package works" in result.stdout
